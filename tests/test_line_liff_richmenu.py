"""LINE used the way public services must: the hearing sheet as a LIFF form (ID token verified with LINE
before anything is stored) and a rich menu per program, against a fake LINE API on loopback."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.engine import Engine
from bot.messages import InboundMessage
from bot.programs import load_programs
from bot.settings import get_settings
from bot.services import Services
from bot.storage.models import ChannelIdentity, Conversation, StaffNotification
from handlers.hearing.models import FormResponse
from integrations.channels.line_richmenu import RichMenuError, find_font, publish, render_image
from integrations.cli_root import app
from integrations.web import create_app
from tests import fake_platforms as fp
from tests.conftest import LiveServer, make_settings
from tests.hearing_script import EXPECTED, complete_interview

LOGIN_CHANNEL = "1650000001"
PROGRAM_YAML = """
id: {id}
name: {name}
default: {default}
hearing_form: {form}
knowledge: {{sources: []}}
line:
  channel_secret_env: LINE_{env}_SECRET
  access_token_env: LINE_{env}_TOKEN
  login_channel_id: "{login}"
  liff_id: "{login}-AbCdEfGh"
rich_menu:
  - {{label: よくある質問, text: ヘルプ}}
  - {{label: ヒアリングシート, liff: true}}
  - {{label: 担当者に相談, text: 担当者と話したい}}
  - {{label: チェックイン, text: チェックイン}}
"""


def write_programs(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for pid, name, default, env, login in (("alpha", "アルファ事業", "true", "ALPHA", LOGIN_CHANNEL),
                                           ("beta", "ベータ事業", "false", "BETA", "1650000002")):
        (folder / f"{pid}.yaml").write_text(PROGRAM_YAML.format(id=pid, name=name, default=default, env=env,
                                                                  login=login, form="dx-platform"), encoding="utf-8")
        monkeypatch.setenv(f"LINE_{env}_SECRET", f"secret-{pid}")
        monkeypatch.setenv(f"LINE_{env}_TOKEN", f"token-{pid}")
    return folder


@dataclass
class Liff:
    services: Services
    platform: fp.FakePlatforms
    url: str

    def submit(self, token: str, answers: dict[str, object], program: str = "alpha") -> httpx.Response:
        return httpx.post(f"{self.url}/liff/{program}/hearing", json={"id_token": token, "answers": answers},
                          timeout=30)

    def stored(self) -> int:
        with self.services.db.session() as session:
            return session.execute(select(func.count()).select_from(FormResponse)).scalar_one()


@contextmanager
def _liff_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: object) -> Iterator[Liff]:
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, programs__dir=write_programs(tmp_path / "programs", monkeypatch),
                                 line__api_url=f"{fake.url}/line", line__data_api_url=f"{fake.url}/line", **overrides)
        services = Services.create(settings)
        with LiveServer(create_app(services)) as server:
            yield Liff(services, platform, server.url)
        services.close()


@pytest.fixture
def liff_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Liff]:
    with _liff_rig(tmp_path, monkeypatch) as rig:
        yield rig


def typed_answers() -> dict[str, object]:
    """What a person types into the LIFF page: the same words the chat script types, choices as values."""
    return {
        "company_name": "株式会社窓口製作所", "business_summary": "自動車部品の精密加工", "industry": "製造業",
        "employees": "約５０人", "postal_code": "〒１００ー０００１", "address": "東京都千代田区千代田１－１",
        "contact_name": "窓口 花子", "contact_phone": "０３－１２３４－５６７８", "contact_email": "Hanako@Example.co.jp",
        "dx_motivation": "受発注を紙で管理しており、デジタル化したい", "dx_literacy": "medium",
        "can_identify_issues": "yes", "can_map_processes": "no", "it_systems": ["accounting", "production"],
        "vision": "受注から出荷まで一気通貫で見える会社", "management_involved": "yes", "online_ready": "yes",
        "can_commit_time": "yes", "start_date": "令和9年1月15日", "meeting_times": ["weekday_evening", "saturday"],
        "understands_program": "yes", "understands_mutual_learning": "yes", "consent_publish": "no",
        "consent_education": "yes", "notes": "特になし", "phase": "design_validation",
        "business_area": "受発注と在庫管理", "has_data": "yes", "data_detail": "Excelの受注台帳が3年分",
        "goal": "在庫の見える化のPoCを終えること",
    }


def chat_submission(services: Services) -> FormResponse:
    """The hearing sheet answered in the chat by the scripted applicant, then 「送信」."""
    engine = Engine(services)
    complete_interview(lambda text: [r.text for r in engine.handle(
        InboundMessage(channel="web", external_user_id="chat-user", text=text))])
    with services.db.session() as session:
        response = session.execute(select(FormResponse).where(FormResponse.channel == "web")).scalar_one()
        session.expunge(response)
        return response


def test_a_valid_liff_submission_is_stored_as_the_same_response_the_chat_would(liff_rig: Liff) -> None:
    token = liff_rig.platform.issue_id_token("U-line-applicant", LOGIN_CHANNEL)
    answer = liff_rig.submit(token, typed_answers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["number"].startswith("H-")
    verify = liff_rig.platform.of("line", "verify")
    assert verify and verify[0].body == {"id_token": token, "client_id": LOGIN_CHANNEL}

    chat = chat_submission(liff_rig.services)
    with liff_rig.services.db.session() as session:
        liff = session.execute(select(FormResponse).where(FormResponse.channel == "liff")).scalar_one()
        assert liff.status == chat.status == "submitted"
        assert (liff.form_id, liff.form_version) == (chat.form_id, chat.form_version)
        assert liff.answers == chat.answers
        assert {k: v for k, v in liff.answers.items() if k in EXPECTED} == EXPECTED
        assert liff.labels == chat.labels and liff.submitted_at is not None
        # the LINE user the token names is the person, as the LINE chat would know them
        identity = session.execute(select(ChannelIdentity).where(
            ChannelIdentity.external_user_id == "U-line-applicant")).scalar_one()
        assert identity.channel == "line" and identity.person_id == liff.person_id
        kinds = [n.kind for n in session.execute(select(StaffNotification)).scalars()]
        assert kinds.count("hearing.submitted") == 2


@pytest.mark.parametrize("case", ["forged", "expired", "other_channel", "missing"])
def test_the_liff_form_rejects_a_bad_id_token_and_stores_nothing(liff_rig: Liff, case: str) -> None:
    platform = liff_rig.platform
    token = {"forged": "eyJ.forged.token", "missing": "",
             "expired": platform.issue_id_token("U-late", LOGIN_CHANNEL, expires_in=-30),
             "other_channel": platform.issue_id_token("U-beta", "1650000002")}[case]
    answer = liff_rig.submit(token, typed_answers())
    assert answer.status_code in (401, 422) if case == "missing" else answer.status_code == 401
    assert liff_rig.stored() == 0
    with liff_rig.services.db.session() as session:
        assert session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 0


def test_the_token_is_verified_before_answers_are_read(liff_rig: Liff) -> None:
    """A forged token with broken answers is 401, not a 422 listing what is wrong with the answers."""
    answer = liff_rig.submit("eyJ.forged", {"employees": "たくさん"})
    assert answer.status_code == 401


def test_a_slow_line_verify_endpoint_does_not_stall_the_server(liff_rig: Liff) -> None:
    """Re-audit of the LIFF form (issue 20): the token check called LINE synchronously inside the async route,
    so while LINE took its time every other request of the server waited (like finding 1's stall)."""
    liff_rig.platform.verify_delay = 3.0
    token = liff_rig.platform.issue_id_token("U-slow", LOGIN_CHANNEL)
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(liff_rig.submit, token, typed_answers())
        time.sleep(0.5)  # the submission is waiting for LINE now
        started = time.monotonic()
        assert httpx.get(f"{liff_rig.url}/healthz", timeout=30).status_code == 200
        waited = time.monotonic() - started
        assert submitted.result().status_code == 200
    assert waited < 1.0, waited  # it was ~2.5 s: the rest of LINE's 3 s


def test_liff_submissions_are_limited_per_address_and_overall(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-audit of the LIFF form: nothing limited its submissions, and each one makes the server ask LINE to
    verify a token. Now they are counted per client address and overall before LINE is asked: over a limit,
    429 and no call to LINE."""
    with _liff_rig(tmp_path, monkeypatch, limits__liff_attempts_per_ip=3, limits__liff_attempts_global=6) as rig:
        def attempt(address: str) -> int:
            return httpx.post(f"{rig.url}/liff/alpha/hearing", json={"id_token": "forged", "answers": {}},
                              headers={"X-Forwarded-For": address}, timeout=30).status_code

        assert [attempt("198.51.100.1") for _ in range(4)] == [401, 401, 401, 429]
        assert len(rig.platform.of("line", "verify")) == 3  # the fourth never reached LINE
        assert [attempt("198.51.100.2") for _ in range(2)] == [401, 401]
        assert attempt("198.51.100.3") == 429  # the seventh from anyone in ten minutes: over the overall six
        assert len(rig.platform.of("line", "verify")) == 5 and rig.stored() == 0


def test_invalid_answers_are_named_and_nothing_is_stored(liff_rig: Liff) -> None:
    token = liff_rig.platform.issue_id_token("U-line-2", LOGIN_CHANNEL)
    answers = typed_answers() | {"contact_email": "not-an-address", "employees": ""}
    answer = liff_rig.submit(token, answers)
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"contact_email", "employees"}
    assert liff_rig.stored() == 0


def test_the_liff_page_and_form_are_served_per_program(liff_rig: Liff) -> None:
    page = httpx.get(f"{liff_rig.url}/liff/alpha/hearing")
    assert page.status_code == 200 and "1650000001-AbCdEfGh" in page.text and "/static/liff.js" in page.text
    policy = page.headers["content-security-policy"]  # LINE's SDK may load; nothing else from outside
    assert "script-src 'self' https://static.line-scdn.net;" in policy and "unsafe-inline" not in policy
    assert "liff.init" in httpx.get(f"{liff_rig.url}/static/liff.js").text
    form = httpx.get(f"{liff_rig.url}/liff/alpha/hearing/form").json()
    assert form["id"] == "dx-platform" and form["sections"]
    assert httpx.get(f"{liff_rig.url}/liff/nope/hearing").status_code == 404


# ------------------------------------------------------------------ rich menu
@pytest.fixture
def japanese_font() -> Path:
    """Debian's fonts-ipafont-gothic (scripts/install-fonts.sh); CI requires it."""
    import os

    try:
        return find_font()
    except RichMenuError:
        if os.environ.get("MADOGUCHI_REQUIRE_FONT"):
            pytest.fail("MADOGUCHI_REQUIRE_FONT is set but no Japanese font is installed")
        pytest.skip("no Japanese font (scripts/install-fonts.sh installs fonts-ipafont-gothic)")


def test_the_rich_menu_command_sends_the_expected_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           japanese_font: Path) -> None:
    from PIL import Image

    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        settings = make_settings(tmp_path, programs__dir=write_programs(tmp_path / "programs", monkeypatch))
        catalog = load_programs(settings)
        first = publish(catalog, catalog.get("beta"), api_url=f"{fake.url}/line", data_api_url=f"{fake.url}/line")
        methods = [c.method for c in platform.of("line")]
        assert methods == ["richmenu.list", "richmenu.create", "richmenu.image", "richmenu.default"]
        create = platform.of("line", "richmenu.create")[0].body
        assert create["name"] == "madoguchi:beta" and create["size"] == {"width": 2500, "height": 1686}
        actions = [a["action"] for a in create["areas"]]
        assert actions[0] == {"type": "message", "label": "よくある質問", "text": "ヘルプ"}
        assert actions[1]["type"] == "uri" and actions[1]["uri"] == "https://liff.line.me/1650000002-AbCdEfGh"
        assert [a["bounds"] for a in create["areas"]][3] == {"x": 1250, "y": 843, "width": 1250, "height": 843}
        image = platform.of("line", "richmenu.image")[0].body
        assert image["menu"] == first.rich_menu_id and image["content_type"] == "image/png" and image["png"]
        assert image["authorization"] == "Bearer token-beta"  # the program's own channel token
        assert platform.of("line", "richmenu.default")[0].body == {"menu": first.rich_menu_id}

        # Run again: a new menu replaces the old one, which is deleted only after the new one is the default.
        second = publish(catalog, catalog.get("beta"), api_url=f"{fake.url}/line", data_api_url=f"{fake.url}/line")
        methods = [c.method for c in platform.of("line")][4:]
        assert methods == ["richmenu.list", "richmenu.create", "richmenu.image", "richmenu.default", "richmenu.delete"]
        assert platform.of("line", "richmenu.delete")[0].body == {"menu": first.rich_menu_id}
        assert second.replaced == [first.rich_menu_id] and list(platform.rich_menus) == [second.rich_menu_id]

    picture = Image.open(io.BytesIO(render_image(catalog.get("beta").rich_menu)))
    assert picture.size == (2500, 1686)
    assert len(set(picture.getdata())) > 10  # labels are drawn (anti-aliased glyphs), not four blank tiles


@contextmanager
def line_for_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[fp.FakePlatforms]:
    """A fake LINE the `madoguchi channels line-richmenu` command talks to, with the test programs."""
    platform = fp.FakePlatforms()
    with LiveServer(platform.app()) as fake:
        write_programs(tmp_path / "programs", monkeypatch)
        monkeypatch.setenv("MADOGUCHI_PROGRAMS__DIR", str(tmp_path / "programs"))
        monkeypatch.setenv("MADOGUCHI_LINE__API_URL", f"{fake.url}/line")
        monkeypatch.setenv("MADOGUCHI_LINE__DATA_API_URL", f"{fake.url}/line")
        yield platform


def test_the_rich_menu_command_fails_politely_without_a_japanese_font(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with line_for_the_cli(tmp_path, monkeypatch) as platform:
        monkeypatch.setenv("MADOGUCHI_LINE__RICH_MENU_FONT", str(tmp_path / "no-such-font.ttf"))
        result = CliRunner().invoke(app, ["channels", "line-richmenu", "--program", "alpha"])
        assert result.exit_code == 2
        assert "MADOGUCHI_LINE__RICH_MENU_FONT" in result.output and "Traceback" not in result.output
        assert platform.of("line", "richmenu.create") == []  # nothing half-made on LINE
        with pytest.raises(RichMenuError, match="fonts-ipafont-gothic"):
            monkeypatch.delenv("MADOGUCHI_LINE__RICH_MENU_FONT")
            monkeypatch.setattr("integrations.channels.line_richmenu.FONT_CANDIDATES", ())
            render_image(load_programs(make_settings(tmp_path, programs__dir=tmp_path / "programs")).get("alpha").rich_menu)


def test_the_rich_menu_font_is_a_setting_and_its_old_name_still_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        japanese_font: Path) -> None:
    """`MADOGUCHI_FONT` was read from os.environ by the drawing code, outside the settings: not in
    `config show`, not in .env, no check. It is now `line.rich_menu_font`; the old name works with a warning."""
    font = tmp_path / "menu-font" / japanese_font.name
    font.parent.mkdir()
    font.write_bytes(japanese_font.read_bytes())
    with line_for_the_cli(tmp_path, monkeypatch) as platform:
        (tmp_path / ".env").write_text(f"MADOGUCHI_FONT={tmp_path / 'gone.ttf'}\n", encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="madoguchi.settings"):
            refused = CliRunner().invoke(app, ["channels", "line-richmenu", "--program", "alpha"])
        assert refused.exit_code == 2 and "gone.ttf" in refused.output  # the old name is read (from .env)
        assert "MADOGUCHI_LINE__RICH_MENU_FONT" in " ".join(r.getMessage() for r in caplog.records)
        monkeypatch.setenv("MADOGUCHI_LINE__RICH_MENU_FONT", str(font))  # the new name wins
        get_settings.cache_clear()
        published = CliRunner().invoke(app, ["channels", "line-richmenu", "--program", "alpha"])
        assert published.exit_code == 0, published.output
        assert len(platform.of("line", "richmenu.image")) == 1
        (tmp_path / ".env").unlink()  # (its deprecation warning would be logged into the output read below)
        get_settings.cache_clear()
        shown = json.loads(CliRunner().invoke(app, ["config", "show", "--json"]).stdout)
        assert shown["line"]["rich_menu_font"] == str(font)
    get_settings.cache_clear()
    assert find_font(get_settings().line.rich_menu_font) == font


# --------------------------------------------------------- per-program LINE accounts
def test_a_line_event_on_b_webhook_with_a_signature_is_rejected(liff_rig: Liff) -> None:
    body = fp.line_body(fp.line_text("ヘルプ"), event_id="01HPROGB0001", user="U-line-b")
    forged = httpx.post(f"{liff_rig.url}/line/beta/webhook", content=body.encode(),
                        headers=fp.line_headers(body, secret="secret-alpha"), timeout=30)
    assert forged.status_code == 401
    with liff_rig.services.db.session() as session:
        assert session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 0

    signed = httpx.post(f"{liff_rig.url}/line/beta/webhook", content=body.encode(),
                        headers=fp.line_headers(body, secret="secret-beta"), timeout=30)
    assert signed.status_code == 200
    reply = liff_rig.platform.wait_for("line", 1, "reply")[0]
    assert reply.authorization == "Bearer token-beta"  # answered from program B's own account
    with liff_rig.services.db.session() as session:
        conversation = session.execute(select(Conversation)).scalar_one()
        assert conversation.program == "beta" and conversation.channel == "line"
    assert httpx.post(f"{liff_rig.url}/line/webhook", content=body.encode(),
                      headers=fp.line_headers(body, secret="secret-beta")).status_code == 404  # no general account


def test_a_form_that_may_not_run_in_line_chat_offers_the_liff_button(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`channels: [web, liff]` in the form: 「ヒアリング開始」 in the LINE chat asks nothing and offers the LIFF form;
    the web chat of the same program runs the form as before."""
    from handlers.hearing.schema import DEFINITIONS_DIR

    forms = tmp_path / "forms"
    forms.mkdir()
    text = (DEFINITIONS_DIR / "dx_platform_hearing.v1.yaml").read_text(encoding="utf-8")
    text = text.replace("version: 1", "version: 2\nchannels: [web, liff]", 1)
    assert "channels: [web, liff]" in text
    (forms / "dx_platform_hearing.v2.yaml").write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path, programs__dir=write_programs(tmp_path / "programs", monkeypatch),
                             hearing__forms_dirs=[forms])
    services = Services.create(settings)
    engine = Engine(services)
    replies = engine.handle(InboundMessage(channel="line", program="alpha", external_user_id="U-line-9",
                                           text="ヒアリング開始"))
    assert len(replies) == 1 and "専用のフォーム" in replies[0].text
    assert [link.url for link in replies[0].links] == [f"https://liff.line.me/{LOGIN_CHANNEL}-AbCdEfGh"]
    with services.db.session() as session:
        assert session.execute(select(func.count()).select_from(FormResponse)).scalar_one() == 0
    from integrations.channels.line import quick_reply

    rendered = quick_reply(replies[0].options, 1, links=replies[0].links).to_dict()
    assert rendered["items"][0]["action"]["type"] == "uri"  # a button LINE opens inside the app
    web = engine.handle(InboundMessage(channel="web", program="alpha", external_user_id="w-9", text="ヒアリング開始"))
    assert any("【1/" in reply.text for reply in web)
    services.close()
