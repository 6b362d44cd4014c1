"""A scripted applicant for the default hearing sheet: which answer to give to which question.

The bot's reply text contains the question's prompt; the script finds the
prompt and answers the way a person would type on a phone (full-width
digits, 「約」, numbered choices), so the same script drives the engine, the
HTTP API and the terminal chat.
"""

from __future__ import annotations

import re

# (fragment of the prompt, what the applicant types, value expected in storage)
ANSWERS: list[tuple[str, str, object]] = [
    ("企業名（正式名称）", "株式会社窓口製作所", "株式会社窓口製作所"),
    ("法人番号（13桁）", "スキップ", None),
    ("事業の概要", "自動車部品の精密加工", "自動車部品の精密加工"),
    ("業種を選んでください", "1", "製造業"),
    ("社員数", "約５０人", 50),
    ("郵便番号", "〒１００ー０００１", "100-0001"),
    ("住所を教えてください", "東京都千代田区千代田１－１", "東京都千代田区千代田1-1"),
    ("ウェブサイトのURL", "スキップ", None),  # only in the test's version 2 of the form
    ("ご担当者さまのお名前", "窓口 花子", "窓口 花子"),
    ("電話番号", "０３－１２３４－５６７８", "03-1234-5678"),
    ("メールアドレス", "Hanako@Example.co.jp", "Hanako@example.co.jp"),
    ("意気込み", "受発注を紙で管理しており、デジタル化したい", "受発注を紙で管理しており、デジタル化したい"),
    ("社内の理解度", "2", "medium"),
    ("経営課題を特定", "はい", True),
    ("業務プロセス", "いいえ", False),
    ("ITシステム・デジタルツール", "1、3", ["accounting", "production"]),
    ("デジタル化の状況について補足", "スキップ", None),
    ("実現したいビジョン", "受注から出荷まで一気通貫で見える会社", "受注から出荷まで一気通貫で見える会社"),
    ("経営陣（社長・役員）", "はい", True),
    ("オンライン会議に参加できる環境", "はい", True),
    ("週1時間程度", "はい", True),
    ("参加を開始できる日", "令和9年1月15日", "2027-01-15"),
    ("打ち合わせが可能な時間帯", "2,3", ["weekday_evening", "saturday"]),
    ("オンライン研修プログラム（約2か月間", "はい", True),
    ("「お互いの学び」", "はい", True),
    ("成果を公開", "いいえ", False),
    ("教育用途", "はい", True),
    ("事務局が留意すべき事項", "特になし", "特になし"),
    ("どの段階に当たりますか", "2", "design_validation"),
    ("DXを検討したい業務領域", "受発注と在庫管理", "受発注と在庫管理"),
    ("活用できるデータ", "はい", True),
    ("どのようなデータが", "Excelの受注台帳が3年分", "Excelの受注台帳が3年分"),
    ("想定されるゴール", "在庫の見える化のPoCを終えること", "在庫の見える化のPoCを終えること"),
]

EXPECTED = {
    "company_name": "株式会社窓口製作所", "corporate_number": None, "business_summary": "自動車部品の精密加工",
    "industry": "製造業", "employees": 50, "postal_code": "100-0001", "address": "東京都千代田区千代田1-1",
    "contact_name": "窓口 花子", "contact_phone": "03-1234-5678", "contact_email": "Hanako@example.co.jp",
    "dx_motivation": "受発注を紙で管理しており、デジタル化したい", "dx_literacy": "medium",
    "can_identify_issues": True, "can_map_processes": False, "it_systems": ["accounting", "production"],
    "digital_status": None, "vision": "受注から出荷まで一気通貫で見える会社", "management_involved": True,
    "online_ready": True, "can_commit_time": True, "start_date": "2027-01-15",
    "meeting_times": ["weekday_evening", "saturday"], "understands_program": True,
    "understands_mutual_learning": True, "consent_publish": False, "consent_education": True, "notes": "特になし",
    "phase": "design_validation", "business_area": "受発注と在庫管理", "has_data": True,
    "data_detail": "Excelの受注台帳が3年分", "goal": "在庫の見える化のPoCを終えること",
}
TOTAL_QUESTIONS = 32  # 33 in the form; 「業種（その他）」 is asked only for その他
PROGRESS = re.compile(r"【(\d+)/(\d+)】")


def answer_for(reply_text: str) -> str | None:
    """What the scripted applicant types in answer to the question in `reply_text`."""
    if "【" not in reply_text:
        return None
    question_part = reply_text[reply_text.index("【"):]
    for fragment, typed, _ in ANSWERS:
        if fragment in question_part:
            return typed
    raise AssertionError(f"no scripted answer for: {reply_text}")


def progress(reply_text: str) -> tuple[int, int] | None:
    match = PROGRESS.search(reply_text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def complete_interview(send_text, start: str = "ヒアリング開始") -> list[str]:  # type: ignore[no-untyped-def]
    """Run a whole interview with `send_text(text) -> [reply texts]` and submit it; returns the last replies."""
    texts = send_text(start)
    for _ in range(80):
        if any("ご回答内容の確認" in t for t in texts):
            return send_text("送信")
        question = next(t for t in texts if "【" in t)
        texts = send_text(answer_for(question))
    raise AssertionError("the interview did not reach the summary")
