"""Experts log visits by message; the SME confirms on its own channel.

Expert: 「チェックイン」 (or /checkin, or the menu button) lists today's visits;
picking one records the check-in time at once (the message's timestamp), then
asks for the location (a LINE/Telegram location message, the web chat's
📍 button) or, failing that, the reason. 「チェックアウト」 likewise, then the
face-to-face minutes and whether the applying institution accompanied.
At check-out the company's linked contacts get a confirmation request on
their own channel (the outbox); a company without a linked contact gets a
one-time code the expert shows on the spot. Each step is committed before the
reply is sent; a redelivered message returns the stored reply (engine), and
a second check-in of the same visit is refused by the state machine.
"""

from __future__ import annotations

import re
from typing import Any

from handlers.hearing.answers import NO_WORDS, YES_WORDS
from bot.handler import Handler, Turn
from bot.i18n import add_strings, t
from bot.messages import Link, Option, Reply
from bot.notify import notify_staff
from bot.outbox import NoChannel, send_to_person
from handlers.accounts import link_codes
from bot.storage.models import Company, Person, Role
from handlers.accounts.models import LinkCode
from handlers.visits.models import Visit
from handlers.visits import service
from handlers.visits.durations import parse_duration_minutes
from bot.jst import jst_date, jst_time
from handlers.visits.rules import ProgramRules, rules_for

add_strings("ja", {
    "visits_menu_checkin": "チェックイン",
    "visits_menu_checkout": "チェックアウト",
    "visits_flow": "訪問の記録",
    "visits_experts_only": "チェックイン・チェックアウトは、専門家として登録され、アカウントを連携した方だけが使えます。事務局から届いた連携コード（例：ABCD-2345）を送ってください。",
    "visits_none_today": "本日（{day}）チェックインできる訪問予定はありません。",
    "visits_none_to_checkout": "チェックアウトできる訪問はありません。",
    "visits_other_days": "前後1週間の予定を表示",
    "visits_pick_checkin": "チェックインする訪問を選んでください。",
    "visits_pick_checkout": "チェックアウトする訪問を選んでください。",
    "visits_checked_in": "{company}様の訪問にチェックインしました（{time}）。",
    "visits_send_location": "現在地の位置情報を送ってください（LINE：＋ → 位置情報、Telegram：📎 → 位置情報、Webチャット：📍ボタン）。",
    "visits_no_location": "位置情報を送れない",
    "visits_ask_no_location_reason": "位置情報を送れない理由を教えてください（例：電波が届かない、端末の設定）。",
    "visits_location_saved": "位置情報を記録しました。",
    "visits_location_reason_saved": "理由を記録しました。位置情報なしとして事務局が確認します。",
    "visits_checked_out": "{company}様の訪問をチェックアウトしました（{time}）。",
    "visits_ask_minutes": "企業と対面で支援した時間を教えてください（例：2時間、90分、10:00-12:00）。準備や移動の時間は含めません。",
    "visits_bad_minutes": "時間として読み取れませんでした。「2時間」「90分」「10:00-12:00」のように送ってください。",
    "visits_minutes_too_long": "チェックインからチェックアウトまで（{elapsed}分）より長い時間になっています。対面で支援した時間をご確認ください。",
    "visits_ask_accompanied": "申請した支援機関の担当者は同行しましたか？",
    "visits_yes": "はい",
    "visits_no": "いいえ",
    "visits_ask_accompanied_minutes": "支援機関が同行した時間を教えてください（例：2時間、90分）。",
    "visits_ask_not_accompanied_reason": "同行しなかった理由を教えてください。",
    "visits_recorded": "記録しました：対面支援 {minutes}（謝金の対象 {billable}、見込み {fee}円）。",
    "visits_confirmation_sent": "企業のご担当者（{count}名）に、訪問内容の確認をお送りしました。確認が取れたらお知らせします。",
    "visits_confirmation_code": "企業のご担当者がチャットに未連携のため、確認コードを発行しました：{code}\nご担当者のスマートフォンで下のリンク（Webチャット）を開いてこのコードを送っていただくと、その場で確認できます。有効期限：{hours}時間。",
    "visits_confirmation_link": "企業の確認用ページを開く",
    "visits_confirm_request": "{day_label}{span} 専門家 {expert}様の支援を受けましたか？\n（{company}様、支援機関：{institution}）",
    "visits_today": "本日",
    "visits_confirm": "確認",
    "visits_dispute": "相違あり",
    "visits_confirmed_thanks": "確認いただきありがとうございました。",
    "visits_ask_confirmer_name": "確認のため、ご担当者のお名前（フルネーム）を入力してください。",
    "visits_own_visit": "ご自身の訪問は確認できません。企業のご担当者に確認していただいてください。",
    "visits_confirmation_flagged_staff": "訪問 #{id} の確認コードによる確認を要確認にしました（{reason}）",
    "visits_confirmed_expert": "{company}様が{day}の訪問を確認しました。謝金：{fee}円",
    "visits_ask_dispute_note": "どの点が異なるか教えてください（例：時間が違う、訪問を受けていない）。",
    "visits_dispute_thanks": "承知しました。事務局から確認のご連絡をいたします。",
    "visits_dispute_expert": "{company}様から{day}の訪問について「相違あり」と回答がありました。事務局が確認します。支援実施証明兼再発防止誓約書の提出が必要です。",
    "visits_dispute_staff": "訪問 V-{id} に企業から相違ありの回答",
    "visits_not_yours": "この訪問の確認はできません。企業のご担当者として連携されたアカウント、または確認コードが必要です。",
    "visits_needs_certificate": "チェックイン・チェックアウト・企業確認のいずれかが欠けているため、この訪問には「支援実施証明兼再発防止誓約書」の提出が必要です。",
    "visits_warn_over_yearly_limit": "⚠ この企業への派遣は今年度{ordinal}回目です（原則{limit}回まで）。事務局に確認してください。",
    "visits_warn_checkin_date_differs": "⚠ 予定日（{planned}）と異なる日のチェックインです。",
    "visits_warn_checkout_date_differs": "⚠ 予定日（{planned}）と異なる日のチェックアウトです。",
    "visits_warn_checkin_location_far": "⚠ チェックイン場所が企業の登録所在地から{tolerance}m以上離れています。",
    "visits_warn_checkout_location_far": "⚠ チェックアウト場所が企業の登録所在地から{tolerance}m以上離れています。",
    "visits_warn_checkin_missing": "⚠ チェックインの記録がありません。",
    "visits_error_already_checked_in": "この訪問は既にチェックイン済みです。",
    "visits_error_not_plannable": "この訪問はチェックインできる状態ではありません。",
    "visits_error_already_checked_out": "この訪問は既にチェックアウト済みです。",
    "visits_error_already_confirmed": "この訪問は既に確認済みです。",
    "visits_error_not_checked_out": "この訪問はまだ確認できる状態ではありません（チェックアウト前、または終了済み）。",
    "visits_error_not_found": "その訪問は見つかりませんでした。",
})
add_strings("en", {
    "visits_menu_checkin": "Check in",
    "visits_menu_checkout": "Check out",
    "visits_flow": "visit record",
    "visits_experts_only": "Check-in and check-out are for registered experts with a linked account. Please send the link code from the secretariat (e.g. ABCD-2345).",
    "visits_none_today": "No visits to check in to today ({day}).",
    "visits_none_to_checkout": "No visits to check out of.",
    "visits_other_days": "Show ±1 week",
    "visits_pick_checkin": "Which visit are you checking in to?",
    "visits_pick_checkout": "Which visit are you checking out of?",
    "visits_checked_in": "Checked in to the visit at {company} ({time}).",
    "visits_send_location": "Please send your current location.",
    "visits_no_location": "Cannot send location",
    "visits_ask_no_location_reason": "Why can you not send your location?",
    "visits_location_saved": "Location recorded.",
    "visits_location_reason_saved": "Reason recorded; the secretariat will review the missing location.",
    "visits_checked_out": "Checked out of the visit at {company} ({time}).",
    "visits_ask_minutes": "How long did you support the company face to face (e.g. 2h, 90 min, 10:00-12:00)?",
    "visits_bad_minutes": "I could not read a duration. Send e.g. “2時間”, “90分” or “10:00-12:00”.",
    "visits_minutes_too_long": "That is longer than the time between check-in and check-out ({elapsed} min). Please check.",
    "visits_ask_accompanied": "Did the applying institution accompany you?",
    "visits_yes": "Yes",
    "visits_no": "No",
    "visits_ask_accompanied_minutes": "How long did the institution accompany you?",
    "visits_ask_not_accompanied_reason": "Why did the institution not accompany you?",
    "visits_recorded": "Recorded: face-to-face {minutes} (billable {billable}, estimated fee {fee} yen).",
    "visits_confirmation_sent": "A confirmation request went to the company's contacts ({count}). You will be told when they confirm.",
    "visits_confirmation_code": "The company's contact has no linked chat account, so here is a confirmation code: {code}\nThey can open the link below on their phone and send the code. Valid for {hours} hours.",
    "visits_confirmation_link": "Open the company's confirmation page",
    "visits_confirm_request": "{day_label}{span}: did you receive support from expert {expert}?\n({company}, institution: {institution})",
    "visits_today": "Today ",
    "visits_confirm": "Confirm",
    "visits_dispute": "Something is wrong",
    "visits_confirmed_thanks": "Thank you for confirming.",
    "visits_ask_confirmer_name": "To confirm, please type your full name.",
    "visits_own_visit": "You cannot confirm your own visit; the company's contact must confirm it.",
    "visits_confirmation_flagged_staff": "Code confirmation of visit #{id} flagged for review ({reason})",
    "visits_confirmed_expert": "{company} confirmed the visit on {day}. Fee: {fee} yen",
    "visits_ask_dispute_note": "What differs (e.g. the time, no visit took place)?",
    "visits_dispute_thanks": "Understood. The secretariat will contact you.",
    "visits_dispute_expert": "{company} reported a discrepancy for the visit on {day}. The secretariat will review it; the paper certificate is required.",
    "visits_dispute_staff": "Visit V-{id}: the company reported a discrepancy",
    "visits_not_yours": "You cannot confirm this visit: a linked company account or a confirmation code is needed.",
    "visits_needs_certificate": "A check-in, check-out or the company's confirmation is missing, so this visit needs the paper certificate (支援実施証明兼再発防止誓約書).",
    "visits_warn_over_yearly_limit": "⚠ This is dispatch no. {ordinal} to this company this fiscal year (limit {limit}).",
    "visits_warn_checkin_date_differs": "⚠ Check-in on a different day than planned ({planned}).",
    "visits_warn_checkout_date_differs": "⚠ Check-out on a different day than planned ({planned}).",
    "visits_warn_checkin_location_far": "⚠ Check-in location is more than {tolerance} m from the company's address.",
    "visits_warn_checkout_location_far": "⚠ Check-out location is more than {tolerance} m from the company's address.",
    "visits_warn_checkin_missing": "⚠ There is no check-in for this visit.",
    "visits_error_already_checked_in": "This visit is already checked in.",
    "visits_error_not_plannable": "This visit cannot be checked in to.",
    "visits_error_already_checked_out": "This visit is already checked out.",
    "visits_error_already_confirmed": "This visit is already confirmed.",
    "visits_error_not_checked_out": "This visit cannot be confirmed now.",
    "visits_error_not_found": "That visit was not found.",
})

CHECKIN_WORDS = ("チェックイン", "ちぇっくいん", "訪問開始", "到着", "checkin", "check in", "check-in")
CHECKOUT_WORDS = ("チェックアウト", "ちぇっくあうと", "訪問終了", "支援終了", "checkout", "check out", "check-out")
NO_LOCATION_WORDS = frozenset({"位置情報を送れない", "位置情報なし", "送れない", "なし"})


def format_minutes(minutes: int, locale: str) -> str:
    hours, rest = divmod(minutes, 60)
    if locale != "ja":
        return f"{hours}h{rest:02d}m" if hours else f"{rest} min"
    return (f"{hours}時間" if hours else "") + (f"{rest}分" if rest or not hours else "")


class VisitsHandler(Handler):
    name = "visits"
    flow_label = "訪問の記録"
    triggers = (*CHECKIN_WORDS, *CHECKOUT_WORDS, re.compile(r"/(checkin|checkout|visits)"), "訪問予定", "今日の訪問")
    choice_prefix = "visits:"

    def menu_options(self, locale: str, person: Person | None = None) -> list[Option]:
        if person is None or person.role != Role.EXPERT.value:
            return []
        return [Option(label=t("visits_menu_checkin", locale), value="visits:checkin"),
                Option(label=t("visits_menu_checkout", locale), value="visits:checkout")]

    # ------------------------------------------------------------ commands
    def on_command(self, turn: Turn) -> list[Reply]:
        choice = turn.message.choice or ""
        action, _, arg = choice.removeprefix(self.choice_prefix).partition(":")
        if action in ("confirm", "dispute"):
            return self._sme_answer(turn, action, int(arg) if arg.isdigit() else 0)
        if not self._is_linked_expert(turn):
            return [Reply(text=turn.t("visits_experts_only"))]
        text = turn.text.lower()
        if action == "checkin" or (not choice and (text in CHECKIN_WORDS or text in ("/checkin", "/visits",
                                                                                        "訪問予定", "今日の訪問"))):
            return self._list_for_checkin(turn, days=0)
        if action == "checkin_week":
            return self._list_for_checkin(turn, days=7)
        if action == "checkout" or (not choice and (text in CHECKOUT_WORDS or text == "/checkout")):
            return self._list_for_checkout(turn)
        if action in ("in", "out") and arg.isdigit():
            return (self._check_in if action == "in" else self._check_out)(turn, int(arg))
        if action in ("noloc", "acc") and turn.conversation.active_flow == self.name:
            return self.on_flow_message(turn) or []
        return [Reply(text=turn.t("unknown_choice"))]

    # ------------------------------------------------------------ check-in
    def _list_for_checkin(self, turn: Turn, days: int) -> list[Reply]:
        today = jst_date(turn.message.timestamp)
        visits = service.expert_visits(turn.session, turn.person.id, ("planned",), today, days)
        if not visits:
            return [Reply(text=turn.t("visits_none_today", day=f"{today:%m/%d}"),
                          options=[] if days else [Option(label=turn.t("visits_other_days"),
                                                          value="visits:checkin_week")])]
        return [Reply(text=turn.t("visits_pick_checkin"),
                      options=[Option(label=self._visit_label(turn, v), value=f"visits:in:{v.id}") for v in visits])]

    def _check_in(self, turn: Turn, visit_id: int) -> list[Reply]:
        return self._stamp(turn, visit_id, "checkin")

    # ----------------------------------------------------------- check-out
    def _list_for_checkout(self, turn: Turn) -> list[Reply]:
        today = jst_date(turn.message.timestamp)
        visits = service.expert_visits(turn.session, turn.person.id, ("checked_in",), today, 7)
        visits += [v for v in service.expert_visits(turn.session, turn.person.id, ("planned",), today, 0)
                   if v not in visits]
        if not visits:
            return [Reply(text=turn.t("visits_none_to_checkout"))]
        return [Reply(text=turn.t("visits_pick_checkout"),
                      options=[Option(label=self._visit_label(turn, v), value=f"visits:out:{v.id}") for v in visits])]

    def _check_out(self, turn: Turn, visit_id: int) -> list[Reply]:
        return self._stamp(turn, visit_id, "checkout")

    def _stamp(self, turn: Turn, visit_id: int, which: str) -> list[Reply]:
        """Record the check-in/out time now (the message's timestamp), then ask for the location."""
        visit = self._own_visit(turn, visit_id)
        if visit is None:
            return [Reply(text=turn.t("visits_error_not_found"))]
        rules = self._rules(turn, visit)
        try:
            if which == "checkin":
                flags = service.check_in(turn.session, rules, visit, turn.message.timestamp, turn.person.id)
            else:
                flags = service.check_out(turn.session, visit, turn.message.timestamp, turn.person.id)
        except service.VisitError as error:
            return [Reply(text=turn.t(f"visits_error_{error.reason}"))]
        turn.start_flow(self.name, {"step": f"{which}_location", "visit_id": visit.id})
        moment = visit.checkin_at if which == "checkin" else visit.checkout_at
        assert moment is not None
        lines = [turn.t(f"visits_{which.replace('check', 'checked_')}", company=visit.company.name,
                        time=jst_time(moment))]
        lines += self._warnings(turn, visit, rules, flags)
        if which == "checkout" and visit.needs_certificate:
            lines.append(turn.t("visits_needs_certificate"))
        if turn.message.location:  # the platform sent the location with the command itself
            return [Reply(text="\n".join(lines))] + self._location(turn, visit, rules, which)
        lines.append(turn.t("visits_send_location"))
        return [Reply(text="\n".join(lines), options=self._location_options(turn))]

    # ---------------------------------------------------------------- flow
    def on_flow_message(self, turn: Turn) -> list[Reply] | None:
        state = turn.flow_state
        step = state.get("step", "")
        if step in ("code_confirm", "dispute_note", "code_name"):
            return self._sme_flow(turn, state)
        visit = self._own_visit(turn, int(state.get("visit_id", 0)))
        if visit is None:
            turn.end_flow("closed")
            return [Reply(text=turn.t("visits_error_not_found"))]
        rules = self._rules(turn, visit)
        text, choice = turn.text, turn.message.choice or ""
        if step in ("checkin_location", "checkout_location"):
            which = step.removesuffix("_location")
            if turn.message.location:
                return self._location(turn, visit, rules, which)
            if choice == "visits:noloc" or text in NO_LOCATION_WORDS:
                turn.set_flow_state(state | {"step": f"{which}_noloc_reason"})
                return [Reply(text=turn.t("visits_ask_no_location_reason"), free_input=True)]
            return None
        if step in ("checkin_noloc_reason", "checkout_noloc_reason"):
            if not text:
                return [Reply(text=turn.t("visits_ask_no_location_reason"), free_input=True)]
            which = step.removesuffix("_noloc_reason")
            service.record_location(turn.session, rules, visit, which, None, None, text)
            return self._after_location(turn, visit, which, [turn.t("visits_location_reason_saved")])
        if step == "minutes":
            return self._minutes(turn, visit, state)
        if step == "accompanied":
            answer = self._yes_no(turn)
            if answer is None:
                return None if text else self._ask_accompanied(turn)
            next_step = "accompanied_minutes" if answer else "not_accompanied_reason"
            turn.set_flow_state(state | {"step": next_step, "accompanied": answer})
            key = "visits_ask_accompanied_minutes" if answer else "visits_ask_not_accompanied_reason"
            return [Reply(text=turn.t(key), free_input=True)]
        if step == "accompanied_minutes":
            minutes = parse_duration_minutes(text)
            if minutes is None:
                return [Reply(text=turn.t("visits_bad_minutes"), free_input=True)]
            return self._finish_checkout(turn, visit, rules, state, minutes, None)
        if step == "not_accompanied_reason":
            if not text:
                return [Reply(text=turn.t("visits_ask_not_accompanied_reason"), free_input=True)]
            return self._finish_checkout(turn, visit, rules, state, None, text)
        return None

    def reprompt(self, turn: Turn) -> list[Reply]:
        step = turn.flow_state.get("step", "")
        prompts = {
            "checkin_location": ("visits_send_location", self._location_options(turn)),
            "checkout_location": ("visits_send_location", self._location_options(turn)),
            "minutes": ("visits_ask_minutes", []),
            "accompanied": ("visits_ask_accompanied", self._yes_no_options(turn)),
            "dispute_note": ("visits_ask_dispute_note", []),
            "code_name": ("visits_ask_confirmer_name", []),
        }
        if step not in prompts:
            return []
        key, options = prompts[step]
        return [Reply(text=turn.t(key), options=options, free_input=not options)]

    def _location(self, turn: Turn, visit: Visit, rules: ProgramRules, which: str) -> list[Reply]:
        location = turn.message.location
        assert location is not None
        flags = service.record_location(turn.session, rules, visit, which, location.lat, location.lon)
        lines = [turn.t("visits_location_saved"), *self._warnings(turn, visit, rules, flags)]
        return self._after_location(turn, visit, which, lines)

    def _after_location(self, turn: Turn, visit: Visit, which: str, lines: list[str]) -> list[Reply]:
        if which == "checkin":
            turn.end_flow("finished")
            return [Reply(text="\n".join(lines))]
        turn.set_flow_state({"step": "minutes", "visit_id": visit.id})
        return [Reply(text="\n".join(lines)), Reply(text=turn.t("visits_ask_minutes"), free_input=True)]

    def _minutes(self, turn: Turn, visit: Visit, state: dict[str, Any]) -> list[Reply] | None:
        minutes = parse_duration_minutes(turn.text)
        if minutes is None or minutes <= 0 or minutes > 24 * 60:
            return None if turn.text.endswith("?") else [Reply(text=turn.t("visits_bad_minutes"), free_input=True)]
        if visit.checkin_at and visit.checkout_at:
            elapsed = int((visit.checkout_at - visit.checkin_at).total_seconds() // 60)
            if minutes > elapsed + 5:
                return [Reply(text=turn.t("visits_minutes_too_long", elapsed=elapsed), free_input=True)]
        turn.set_flow_state(state | {"step": "accompanied", "minutes": minutes})
        return self._ask_accompanied(turn)

    def _ask_accompanied(self, turn: Turn) -> list[Reply]:
        return [Reply(text=turn.t("visits_ask_accompanied"), options=self._yes_no_options(turn))]

    def _finish_checkout(self, turn: Turn, visit: Visit, rules: ProgramRules, state: dict[str, Any],
                         accompanied_minutes: int | None, reason: str | None) -> list[Reply]:
        minutes = int(state["minutes"])
        service.record_support(visit, minutes, bool(state.get("accompanied")), accompanied_minutes, reason)
        turn.audit("visit.support_recorded", subject_type="visit", subject_id=visit.id,
                   data={"minutes": minutes, "accompanied": bool(state.get("accompanied"))})
        turn.end_flow("finished")
        from handlers.visits.rules import billable_minutes, fee_before_cap

        fee = min(fee_before_cap(minutes, rules), rules.daily_fee_cap_yen)
        replies = [Reply(text=turn.t("visits_recorded", minutes=format_minutes(minutes, turn.locale),
                                     billable=format_minutes(billable_minutes(minutes, rules), turn.locale),
                                     fee=f"{fee:,}"))]
        return replies + self._request_confirmation(turn, visit, rules)

    # ------------------------------------------------------- confirmation
    def _request_confirmation(self, turn: Turn, visit: Visit, rules: ProgramRules) -> list[Reply]:
        contacts = service.company_contacts(turn.session, visit.company_id)
        sent = 0
        for contact in contacts:
            request = self.confirmation_request(turn, visit, contact.locale or turn.locale)
            try:
                send_to_person(turn.session, contact.id, [request], verified_only=True)
                sent += 1
            except NoChannel:
                continue
        if sent:
            turn.audit("visit.confirmation_requested", subject_type="visit", subject_id=visit.id,
                       data={"contacts": sent})
            return [Reply(text=turn.t("visits_confirmation_sent", count=sent))]
        code = link_codes.issue(turn.session, "visit_confirm", hours=rules.confirmation_code_hours,
                                visit_id=visit.id)
        turn.audit("visit.confirmation_code_issued", subject_type="visit", subject_id=visit.id)
        url = f"{turn.services.settings.public_base_url.rstrip('/')}/?code={code}"
        return [Reply(text=turn.t("visits_confirmation_code", code=code, hours=rules.confirmation_code_hours),
                      links=[Link(label=turn.t("visits_confirmation_link"), url=url)])]

    @staticmethod
    def confirmation_request(turn: Turn, visit: Visit, locale: str) -> Reply:
        day = jst_date(visit.checkout_at or visit.checkin_at or turn.message.timestamp)
        today = jst_date(turn.message.timestamp)
        start = jst_time(visit.checkin_at) if visit.checkin_at else (visit.planned_start or "")
        end = jst_time(visit.checkout_at) if visit.checkout_at else (visit.planned_end or "")
        text = t("visits_confirm_request", locale,
                 day_label=t("visits_today", locale) if day == today else f"{day:%m月%d日} ",
                 span=f"{start}-{end}" if start or end else "", expert=visit.expert.display_name or "-",
                 company=visit.company.name, institution=visit.institution or "-")
        return Reply(text=text, options=[Option(label=t("visits_confirm", locale), value=f"visits:confirm:{visit.id}"),
                                         Option(label=t("visits_dispute", locale), value=f"visits:dispute:{visit.id}")])

    def _sme_answer(self, turn: Turn, action: str, visit_id: int) -> list[Reply]:
        visit = service.lock(turn.session, visit_id)
        if visit is None:
            return [Reply(text=turn.t("visits_error_not_found"))]
        state = turn.flow_state if turn.conversation.active_flow == self.name else {}
        via_code = state.get("step") == "code_confirm" and state.get("visit_id") == visit.id
        if not via_code and not service.may_confirm(turn.session, turn.person, visit):
            return [Reply(text=turn.t("visits_not_yours"))]
        if visit.status != "checked_out":
            reason = "already_confirmed" if visit.status == "confirmed" else "not_checked_out"
            return [Reply(text=turn.t(f"visits_error_{reason}"))]
        method = "code" if via_code else "chat"
        if turn.person.id == visit.expert_person_id:  # the expert's own identities never confirm
            return [Reply(text=turn.t("visits_own_visit"))]
        if action == "dispute":
            turn.start_flow(self.name, {"step": "dispute_note", "visit_id": visit.id, "method": method,
                                        "code_id": state.get("code_id")})
            return [Reply(text=turn.t("visits_ask_dispute_note"), free_input=True)]
        if via_code:  # who confirms with a code is recorded: the name they type, their address and browser
            turn.start_flow(self.name, {"step": "code_name", "visit_id": visit.id, "code_id": state.get("code_id")})
            return [Reply(text=turn.t("visits_ask_confirmer_name"), free_input=True)]
        self._consume_code(turn, state)
        service.confirm(turn.session, visit, turn.person.id, method)
        if turn.conversation.active_flow == self.name:
            turn.end_flow("finished")
        fee = service.visit_fee(turn.session, visit, turn.services.settings.program_rules_file)
        self._tell_expert(turn, visit, "visits_confirmed_expert", fee=f"{fee:,}")
        return [Reply(text=turn.t("visits_confirmed_thanks"))]

    def _sme_flow(self, turn: Turn, state: dict[str, Any]) -> list[Reply] | None:
        if state.get("step") == "code_confirm":
            return None  # waiting for a button; a typed question goes to the FAQ
        if state.get("step") == "code_name":
            return self._confirm_with_name(turn, state)
        visit = service.lock(turn.session, int(state.get("visit_id", 0)))
        if visit is None or not turn.text:
            return [Reply(text=turn.t("visits_ask_dispute_note"), free_input=True)]
        self._consume_code(turn, state)
        service.dispute(turn.session, visit, turn.person.id, turn.text)
        turn.end_flow("finished")
        notify_staff(turn.session, "visit.disputed", turn.t("visits_dispute_staff", id=visit.id), turn.text,
                     subject_type="visit", subject_id=visit.id, actor_person_id=turn.person.id)
        self._tell_expert(turn, visit, "visits_dispute_expert")
        return [Reply(text=turn.t("visits_dispute_thanks"))]

    def _confirm_with_name(self, turn: Turn, state: dict[str, Any]) -> list[Reply]:
        name = turn.text.strip()
        if not name or len(name) > 100:
            return [Reply(text=turn.t("visits_ask_confirmer_name"), free_input=True)]
        visit = service.lock(turn.session, int(state.get("visit_id", 0)))
        if visit is None or visit.status != "checked_out":
            turn.end_flow("closed")
            return [Reply(text=turn.t("visits_error_not_checked_out"))]
        if turn.person.id == visit.expert_person_id:
            turn.end_flow("closed")
            return [Reply(text=turn.t("visits_own_visit"))]
        evidence = service.record_code_confirmation(turn.session, visit, turn.person.id, name, turn.message.client)
        self._consume_code(turn, state)
        service.confirm(turn.session, visit, turn.person.id, "code")
        turn.end_flow("finished")
        if evidence.flagged:
            notify_staff(turn.session, "visit.confirmation_flagged",
                         turn.t("visits_confirmation_flagged_staff", id=visit.id, reason=evidence.flag_reason),
                         f"{name} / {evidence.client_ip or '-'} / {evidence.user_agent or '-'}",
                         subject_type="visit", subject_id=visit.id, actor_person_id=turn.person.id)
        fee = service.visit_fee(turn.session, visit, turn.services.settings.program_rules_file)
        self._tell_expert(turn, visit, "visits_confirmed_expert", fee=f"{fee:,}")
        return [Reply(text=turn.t("visits_confirmed_thanks"))]

    def _consume_code(self, turn: Turn, state: dict[str, Any]) -> None:
        code_id = state.get("code_id")
        if code_id:
            row = turn.session.get(LinkCode, code_id)
            if row is not None and row.used_at is None:
                link_codes.consume(row, turn.person.id)

    def _tell_expert(self, turn: Turn, visit: Visit, key: str, **values: str) -> None:
        expert = turn.session.get(Person, visit.expert_person_id)
        assert expert is not None
        text = t(key, expert.locale or turn.locale, company=visit.company.name,
                 day=f"{visit.planned_date:%m/%d}", **values)
        try:
            send_to_person(turn.session, expert.id, [Reply(text=text)], verified_only=True)
        except NoChannel:  # the expert has no linked account any more: staff see it in the report
            pass

    # -------------------------------------------------------------- helpers
    def _is_linked_expert(self, turn: Turn) -> bool:
        return turn.person.role == Role.EXPERT.value and turn.identity().verified

    def _own_visit(self, turn: Turn, visit_id: int) -> Visit | None:
        visit = service.lock(turn.session, visit_id)
        if visit is None or visit.expert_person_id != turn.person.id:
            return None
        return visit

    def _rules(self, turn: Turn, visit: Visit) -> ProgramRules:
        return rules_for(visit.planned_date, turn.services.settings.program_rules_file)

    def _warnings(self, turn: Turn, visit: Visit, rules: ProgramRules, flags: list[str]) -> list[str]:
        lines = []
        for flag in flags:
            key = f"visits_warn_{flag}"
            if flag == "over_yearly_limit":
                ordinal = service.dispatch_ordinal(turn.session, visit.company_id, visit.planned_date, visit.id)
                lines.append(turn.t(key, ordinal=ordinal, limit=rules.max_dispatches_per_fiscal_year))
            elif flag.endswith("_location_missing"):
                continue
            else:
                lines.append(turn.t(key, planned=f"{visit.planned_date:%m/%d}",
                                    tolerance=f"{rules.location_tolerance_m:,.0f}"))
        return lines

    def _visit_label(self, turn: Turn, visit: Visit) -> str:
        start = f" {visit.planned_start}" if visit.planned_start else ""
        company: Company = visit.company
        return f"{visit.planned_date:%m/%d}{start} {company.name}"[:40]

    def _location_options(self, turn: Turn) -> list[Option]:
        return [Option(label=turn.t("visits_no_location"), value="visits:noloc")]

    def _yes_no_options(self, turn: Turn) -> list[Option]:
        return [Option(label=turn.t("visits_yes"), value="visits:acc:yes"),
                Option(label=turn.t("visits_no"), value="visits:acc:no")]

    def _yes_no(self, turn: Turn) -> bool | None:
        choice = turn.message.choice or ""
        if choice.startswith("visits:acc:"):
            return choice.endswith(":yes")
        word = turn.text.lower().rstrip("。.!！")
        if word in YES_WORDS:
            return True
        if word in NO_WORDS:
            return False
        return None


@link_codes.redeemer("visit_confirm")
def confirm_with_code(turn: Turn, row: LinkCode) -> list[Reply]:
    """An SME without a linked account opened the expert's code: show the visit and ask to confirm."""
    visit = service.lock(turn.session, row.visit_id or 0)
    if visit is None or visit.status != "checked_out":
        return [Reply(text=turn.t("visits_error_not_checked_out"))]
    if turn.person.id == visit.expert_person_id:  # the expert's own identities never confirm
        return [Reply(text=turn.t("visits_own_visit"))]
    turn.start_flow(VisitsHandler.name, {"step": "code_confirm", "visit_id": visit.id, "code_id": row.id})
    return [VisitsHandler.confirmation_request(turn, visit, turn.locale)]
