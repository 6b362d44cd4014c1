"""Program rules at their boundaries: fee steps, daily cap, fiscal year, distance, per-year configuration."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from handlers.visits.durations import parse_duration_minutes
from handlers.visits.rules import (
    billable_minutes,
    distance_m,
    fee_before_cap,
    fees_for_day,
    fiscal_year,
    rules_for,
)

RULES = rules_for(date(2026, 11, 1))


@pytest.mark.parametrize(("minutes", "fee"), [
    (0, 0), (29, 0), (30, 2640), (31, 2640), (59, 2640), (60, 5280), (89, 5280), (90, 7920), (120, 10560),
])
def test_fee_in_30_minute_steps_remainder_dropped(minutes: int, fee: int) -> None:
    assert fee_before_cap(minutes, RULES) == fee


def test_daily_cap_six_hours_vs_six_and_a_half() -> None:
    assert billable_minutes(360, RULES) == 360
    assert fees_for_day([(1, 360)], RULES) == {1: 31680}  # exactly the cap
    assert fee_before_cap(390, RULES) == 34320
    assert fees_for_day([(1, 390)], RULES) == {1: 31680}  # capped
    # Two visits the same day: the earlier visit uses the cap first, whatever order they are given in.
    assert fees_for_day([(7, 120), (3, 300)], RULES) == {3: 26400, 7: 5280}


def test_fiscal_year_runs_april_to_march() -> None:
    assert fiscal_year(date(2027, 3, 31)) == 2026
    assert fiscal_year(date(2027, 4, 1)) == 2027
    assert fiscal_year(date(2026, 4, 1)) == 2026


def test_rules_are_per_program_year(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    base = dict(max_dispatches_per_fiscal_year=3, fee_step_minutes=30, daily_fee_cap_yen=31680,
                location_tolerance_m=1000, confirmation_code_hours=72, link_code_hours=168)
    import yaml

    path.write_text(yaml.safe_dump({2026: base | {"hourly_fee_yen": 5280},
                                    2027: base | {"hourly_fee_yen": 6000, "max_dispatches_per_fiscal_year": 4}}))
    assert rules_for(date(2027, 3, 31), path).hourly_fee_yen == 5280
    assert rules_for(date(2027, 4, 1), path).hourly_fee_yen == 6000
    assert rules_for(date(2030, 6, 1), path).max_dispatches_per_fiscal_year == 4  # newest earlier year
    assert fee_before_cap(60, rules_for(date(2027, 4, 1), path)) == 6000


def test_distance_between_tokyo_station_and_points_around_it() -> None:
    tokyo = (35.681236, 139.767125)
    assert distance_m(*tokyo, *tokyo) == 0
    assert 1100 < distance_m(*tokyo, 35.6915, 139.7671) < 1200  # ~1.1 km north
    assert 390_000 < distance_m(*tokyo, 34.702485, 135.495951) < 410_000  # Osaka station


@pytest.mark.parametrize(("typed", "minutes"), [
    ("2時間", 120), ("９０分", 90), ("1時間半", 90), ("1時間30分", 90), ("10:00-12:00", 120), ("10:00〜11:45", 105),
    ("2.5h", 150), ("120", 120), ("約2時間", 120), ("abc", None), ("半", None), ("12:00-10:00", None),
])
def test_durations_as_experts_type_them(typed: str, minutes: int | None) -> None:
    assert parse_duration_minutes(typed) == minutes
