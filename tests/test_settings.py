"""Settings come in named groups with one environment naming style (`MADOGUCHI_<GROUP>__<FIELD>`); the flat names
of earlier releases still work through one deprecation table; bad values stop the start with the variable named;
secrets never show."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from typer.testing import CliRunner

from bot.settings import LEGACY_ENV, PROJECT_ROOT, Settings, SettingsError, env_name, get_settings
from integrations.cli_root import app


def every_setting() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            paths.extend((name, sub) for sub in group.model_fields)
        else:
            paths.append((name,))
    return paths


def value_at(settings: Settings, path: tuple[str, ...]) -> object:
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value


def test_settings_load_from_the_grouped_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("MADOGUCHI_DATABASE__URL", "postgresql+psycopg://u:p@h/db")
    monkeypatch.setenv("MADOGUCHI_HOURS__EXTRA_CLOSED_DAYS", '["2027-08-13"]')
    monkeypatch.setenv("MADOGUCHI_LIMITS__LOGIN_FAILURES_PER_USER", "7")
    monkeypatch.setenv("MADOGUCHI_STAFF__COOKIE_SECURE", "false")
    monkeypatch.setenv("MADOGUCHI_SLACK__BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("MADOGUCHI_KNOWLEDGE__PATHS", f'["{tmp_path / "kb"}"]')
    settings = Settings()
    assert settings.data_dir == tmp_path / "d"
    assert settings.database.url == "postgresql+psycopg://u:p@h/db" == settings.resolved_database_url
    assert [str(day) for day in settings.hours.extra_closed_days] == ["2027-08-13"]
    assert settings.limits.login_failures_per_user == 7 and settings.staff.cookie_secure is False
    assert isinstance(settings.slack.bot_token, SecretStr) and settings.slack.bot_token.get_secret_value() == "xoxb-1"
    assert settings.knowledge.paths == [tmp_path / "kb"]


def test_a_flat_name_of_an_earlier_release_still_works_and_logs_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@old/db")
    monkeypatch.setenv("BUSINESS_OPEN", "09:30")
    monkeypatch.setenv("RATE_LIMIT_PER_USER_PER_MINUTE", "5")
    with caplog.at_level(logging.WARNING, logger="madoguchi.settings"):
        settings = Settings()
    assert settings.database.url == "postgresql+psycopg://u:p@old/db"
    assert settings.hours.open == "09:30" and settings.limits.messages_per_user_per_minute == 5
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "DATABASE_URL" in warned and "MADOGUCHI_DATABASE__URL" in warned
    assert "MADOGUCHI_LIMITS__MESSAGES_PER_USER_PER_MINUTE" in warned


def test_the_new_name_wins_over_the_flat_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARING_FORM", "old-form")
    monkeypatch.setenv("MADOGUCHI_HEARING__FORM", "new-form")
    assert Settings().hearing.form == "new-form"


def test_a_flat_name_in_dotenv_still_works(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRETARIAT_CONTACT=事務局 03-1111-2222\n", encoding="utf-8")
    assert Settings().escalation.contact == "事務局 03-1111-2222"


def test_every_deprecated_name_points_at_a_setting_and_every_setting_is_documented() -> None:
    settings = Settings()
    for old, path in LEGACY_ENV.items():
        assert path in every_setting(), (old, path)
        value_at(settings, path)
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    for path in every_setting():
        if path != ("capabilities",):
            assert env_name(path) in readme, env_name(path)
            assert env_name(path) in example, env_name(path)
    assert not re.search(r"^# ?(DATABASE_URL|SLACK_BOT_TOKEN|BUSINESS_OPEN)=", example, re.M)


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("MADOGUCHI_WEB__PORT", "eighty", "valid integer"),
    ("MADOGUCHI_LOG__RETENTION_DAYS", "7", "greater than or equal to 31"),
    ("MADOGUCHI_LLM__PROVIDER", "gpt", "'none', 'openai' or 'ollama'"),
    ("MADOGUCHI_SLACK__BOT_TOKN", "x", "unknown setting"),
])
def test_an_invalid_value_stops_the_start_naming_the_variable(
        variable: str, value: str, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as error:
        get_settings()
    assert variable in str(error.value) and said in str(error.value)
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code != 0 and variable in result.output and "Traceback" not in result.output


def test_config_show_masks_every_secret_and_names_each_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = [path for path in every_setting() if Settings.model_fields[path[0]].annotation is not None
               and len(path) == 2 and "SecretStr" in str(
                   Settings.model_fields[path[0]].annotation.model_fields[path[1]].annotation)]  # type: ignore[union-attr]
    assert len(secrets) >= 10
    for number, path in enumerate(secrets):
        monkeypatch.setenv(env_name(path), f"secret-value-{number:02d}")
    get_settings.cache_clear()
    table = CliRunner().invoke(app, ["config", "show"], terminal_width=250)
    as_json = CliRunner().invoke(app, ["config", "show", "--json"])
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output
    assert "secret-value" not in table.output + as_json.output
    assert "MADOGUCHI_SLACK__SIGNING_SECRET" in table.output and "MADOGUCHI_DATABASE__URL" in table.output
    values = json.loads(as_json.output)
    assert all(values[group][field] == "********" for group, field in secrets)
