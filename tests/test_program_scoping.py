"""Program filters on the secretariat's exports and imports (issue 22): `hearing export`, `visits report` and
`visits import` take `--program` and `--staff` (a staff member's programs; admins see all), and
`GET /api/hearings` reads each of the token's programs' responses to that program's own hearing form."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.services import Services
from bot.settings import get_settings
from bot.storage.models import Company, Person, utcnow
from bot.security import api_tokens
from handlers.escalation.staff import create as create_staff
from handlers.hearing.models import FormResponse
from handlers.hearing.schema import DEFINITIONS_DIR
from handlers.visits.models import Visit
from integrations.cli_root import app as cli_app
from integrations.web import create_app
from tests.conftest import LiveServer

PASSWORD = "correct horse battery"


@dataclass
class World:
    services: Services
    responses: dict[tuple[str, str], int]  # (program, form) -> response id
    expert_id: int
    company_id: int


def write_programs(root: Path) -> tuple[Path, Path]:
    """Three programs: alpha (default, form-a), beta (form-b), gamma (no hearing form)."""
    programs, forms = root / "programs", root / "forms"
    programs.mkdir()
    forms.mkdir()
    original = (DEFINITIONS_DIR / "dx_platform_hearing.v1.yaml").read_text(encoding="utf-8")
    for form in ("form-a", "form-b"):
        (forms / f"{form}.yaml").write_text(original.replace("id: dx-platform", f"id: {form}", 1), encoding="utf-8")
    for pid, form, default in (("alpha", "form-a", True), ("beta", "form-b", False), ("gamma", None, False)):
        (programs / f"{pid}.yaml").write_text(
            f"id: {pid}\nname: {pid}事業\ndefault: {str(default).lower()}\nhearing_form: {form or 'null'}\n",
            encoding="utf-8")
    return programs, forms


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Iterator[World]:
    """On SQLite and PostgreSQL: the commands read the same database (MADOGUCHI_DATABASE__URL)."""
    programs, forms = write_programs(tmp_path)
    if database_url:
        monkeypatch.setenv("MADOGUCHI_DATABASE__URL", database_url)
    monkeypatch.setenv("MADOGUCHI_PROGRAMS__DIR", str(programs))
    monkeypatch.setenv("MADOGUCHI_HEARING__FORMS_DIRS", f'["{forms}"]')
    get_settings.cache_clear()
    services = Services.create(get_settings())
    responses: dict[tuple[str, str], int] = {}
    with services.db.session() as session:
        create_staff(session, "alpha-staff", "α担当", PASSWORD).programs = ["alpha"]
        create_staff(session, "beta-staff", "β担当", PASSWORD).programs = ["beta"]
        create_staff(session, "boss", "管理者", PASSWORD, role="admin")
        company = Company(name="株式会社テスト")
        expert = Person(role="expert", display_name="専門家 一郎")
        session.add_all([company, expert])
        session.flush()
        # each program's own form, and beta's answer to alpha's form (an older campaign, say)
        for program, form in (("alpha", "form-a"), ("beta", "form-b"), ("beta", "form-a")):
            response = FormResponse(form_id=form, form_version=1, person_id=expert.id, channel="web",
                                    program=program, status="submitted", labels={}, state={},
                                    answers={"company_name": f"{program}-{form}社"}, submitted_at=utcnow())
            session.add(response)
            session.flush()
            responses[(program, form)] = response.id
        for program in ("alpha", "beta"):
            session.add(Visit(expert_person_id=expert.id, company_id=company.id, program=program,
                              planned_date=date(2026, 11, 2), institution=f"{program}商工会", flags=[]))
        expert_id, company_id = expert.id, company.id
    yield World(services, responses, expert_id, company_id)
    services.close()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.output


def exported(*args: str) -> tuple[int, str, list[str]]:
    """Exit code, output, and the company names of the exported rows."""
    result = CliRunner().invoke(cli_app, ["hearing", "export", "--format", "csv", *args])
    text = result.stdout_bytes.decode("utf-8-sig", errors="replace")
    if result.exit_code != 0:
        return result.exit_code, result.output, []
    rows = list(csv.DictReader(io.StringIO(text)))
    return result.exit_code, text, sorted(row["企業名"] for row in rows)


def test_hearing_export_takes_a_program_and_a_staff_members_programs(world: World) -> None:
    assert exported("--program", "beta")[2] == ["beta-form-b社"]  # beta's own form
    assert exported("--program", "beta", "--form", "form-a")[2] == ["beta-form-a社"]
    assert exported("--form", "form-a")[2] == ["alpha-form-a社", "beta-form-a社"]  # the operator: every program
    assert exported("--form", "form-a", "--staff", "alpha-staff")[2] == ["alpha-form-a社"]
    assert exported("--form", "form-a", "--staff", "boss")[2] == ["alpha-form-a社", "beta-form-a社"]
    code, output, _ = exported("--program", "beta", "--staff", "alpha-staff")
    assert code == 2 and "beta の担当ではありません" in output
    code, output, _ = exported("--program", "gamma")
    assert code == 2 and "ヒアリングシートがありません" in output
    code, output, _ = exported("--staff", "nobody")
    assert code == 2 and "nobody はいません" in output


def report_institutions(*args: str) -> tuple[int, str, list[str]]:
    result = CliRunner().invoke(cli_app, ["visits", "report", "--month", "2026-11", "--format", "csv", *args])
    if result.exit_code != 0:
        return result.exit_code, result.output, []
    rows = list(csv.reader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    return 0, "", sorted(row[1] for row in rows[2:] if row[0] == "支援機関")


def test_visits_report_takes_a_program_and_a_staff_members_programs(world: World) -> None:
    assert report_institutions()[2] == ["alpha商工会", "beta商工会"]
    assert report_institutions("--program", "beta")[2] == ["beta商工会"]
    assert report_institutions("--staff", "alpha-staff")[2] == ["alpha商工会"]
    assert report_institutions("--staff", "boss")[2] == ["alpha商工会", "beta商工会"]
    code, output, _ = report_institutions("--program", "alpha", "--staff", "beta-staff")
    assert code == 2 and "alpha の担当ではありません" in output


def test_visits_list_takes_a_program(world: World) -> None:
    """`visits list` listed every program's visits with no way to choose one (issue 22 left it out)."""
    with world.services.db.session() as session:
        ids = {v.program: f"V-{v.id}" for v in session.execute(select(Visit)).scalars()}
        session.add(Visit(expert_person_id=world.expert_id, company_id=world.company_id, program=None,
                          planned_date=date(2026, 11, 3), institution="older", flags=[]))  # before programs
        session.flush()
        ids["older"] = f"V-{session.execute(select(Visit.id).where(Visit.program.is_(None))).scalar_one()}"

    def listed(*args: str) -> set[str]:
        code, output = run("visits", "list", *args)
        assert code == 0, output
        return {ident for ident in ids.values() if f"{ident} " in output}

    assert listed() == set(ids.values())
    assert listed("--program", "beta") == {ids["beta"]}
    assert listed("--program", "alpha") == {ids["alpha"], ids["older"]}  # a visit of no program is the default's
    assert listed("--program", "gamma") == set()
    code, output = run("visits", "list", "--program", "nosuch")
    assert code == 2 and "事業 nosuch はありません" in output


def test_visits_import_assigns_programs_and_refuses_rows_the_importer_cannot_access(world: World,
                                                                                      tmp_path: Path) -> None:
    sheet = tmp_path / "visits.csv"
    sheet.write_text("expert_id,company_id,date,institution,program\n"
                     f"{world.expert_id},{world.company_id},2026-12-01,行1,beta\n"
                     f"{world.expert_id},{world.company_id},2026-12-02,行2,\n"
                     f"{world.expert_id},{world.company_id},2026-12-03,行3,alpha\n"
                     f"{world.expert_id},{world.company_id},2026-12-04,行4,nosuch\n", encoding="utf-8")
    code, output = run("visits", "import", str(sheet), "--program", "beta", "--staff", "beta-staff")
    assert code == 1
    assert "visits.csv:4: 事業 alpha の訪問は beta-staff の担当外のため取り込みません" in output.replace("\n", "")
    assert "visits.csv:5: 事業 nosuch はありません" in output.replace("\n", "")
    with world.services.db.session() as session:
        imported = {v.institution: v.program for v in session.execute(
            select(Visit).where(Visit.planned_date >= date(2026, 12, 1))).scalars()}
    assert imported == {"行1": "beta", "行2": "beta"}  # a row without a program takes --program
    # without --program a row without one belongs to the default program; an admin may import any program
    sheet.write_text("expert_id,company_id,date,institution,program\n"
                     f"{world.expert_id},{world.company_id},2026-12-05,行5,\n"
                     f"{world.expert_id},{world.company_id},2026-12-06,行6,beta\n", encoding="utf-8")
    assert run("visits", "import", str(sheet), "--staff", "boss")[0] == 0
    with world.services.db.session() as session:
        imported = {v.institution: v.program for v in session.execute(
            select(Visit).where(Visit.planned_date >= date(2026, 12, 5))).scalars()}
    assert imported == {"行5": "alpha", "行6": "beta"}


def test_api_hearings_reads_each_programs_own_form(world: World) -> None:
    with world.services.db.session() as session:
        tokens = {name: api_tokens.create(session, f"token-{name}", ["hearings:read"], programs=programs)[1]
                  for name, programs in (("beta", ["beta"]), ("both", ["alpha", "beta"]), ("all", ["*"]),
                                         ("gamma", ["gamma"]))}
    with LiveServer(create_app(world.services)) as server:
        def listed(token: str, **params: str) -> set[int]:
            answer = httpx.get(f"{server.url}/api/hearings", params=params, timeout=30,
                               headers={"Authorization": f"Bearer {tokens[token]}"})
            assert answer.status_code == 200, answer.text
            return {item["id"] for item in answer.json()["items"]}

        r = world.responses
        assert listed("beta") == {r[("beta", "form-b")]}  # beta's form, not the installation's MADOGUCHI_HEARING__FORM
        assert listed("both") == {r[("alpha", "form-a")], r[("beta", "form-b")]}
        assert listed("all") == {r[("alpha", "form-a")], r[("beta", "form-b")]}
        assert listed("gamma") == set()  # a program without a hearing form has no responses to its form
        assert listed("beta", form="form-a") == {r[("beta", "form-a")]}
        assert listed("both", form="form-a") == {r[("alpha", "form-a")], r[("beta", "form-a")]}
