"""The program's rules for visits, in one place, per fiscal year (April to March).

Numbers come from `program_rules.yaml` (or the file named by the setting
`visits.rules_file`) keyed by fiscal year, so a new program year with a new
fee is a data change, not a code change. Everything here is a pure function:
the chat, the CLI and the monthly report must agree to the yen.
"""

from __future__ import annotations

import math
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

RULES_FILE = Path(__file__).resolve().parent / "program_rules.yaml"


class ProgramRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_dispatches_per_fiscal_year: int = Field(ge=1)
    hourly_fee_yen: int = Field(ge=0)
    fee_step_minutes: int = Field(ge=1, le=60)
    daily_fee_cap_yen: int = Field(ge=0)
    location_tolerance_m: float = Field(gt=0)
    confirmation_code_hours: int = Field(ge=1)
    link_code_hours: int = Field(ge=1)


@lru_cache(maxsize=8)
def _load(path: str) -> dict[int, ProgramRules]:
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {int(year): ProgramRules.model_validate(values) for year, values in raw.items()}


def fiscal_year(day: date) -> int:
    """Japanese fiscal year: 2027-03-31 belongs to FY2026, 2027-04-01 to FY2027."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_start(year: int) -> date:
    return date(year, 4, 1)


def rules_for(day: date, path: Path | None = None) -> ProgramRules:
    """The rules in force on `day`: that fiscal year's entry, else the newest earlier one."""
    table = _load(str(path or RULES_FILE))
    year = fiscal_year(day)
    candidates = [y for y in table if y <= year] or [min(table)]
    return table[max(candidates)]


def billable_minutes(minutes: int, rules: ProgramRules) -> int:
    """Face-to-face minutes rounded down to whole steps (29 -> 0, 30 -> 30, 59 -> 30 with 30-minute steps)."""
    if minutes <= 0:
        return 0
    return (minutes // rules.fee_step_minutes) * rules.fee_step_minutes


def fee_before_cap(minutes: int, rules: ProgramRules) -> int:
    """Fee for one visit: hourly fee pro rata over billable minutes, in whole yen (5,280/h -> 2,640 per 30 min)."""
    return math.floor(billable_minutes(minutes, rules) * rules.hourly_fee_yen / 60)


def fees_for_day(minutes_by_visit: list[tuple[int, int]], rules: ProgramRules) -> dict[int, int]:
    """Fees of one expert's confirmed visits on one day, in visit order, with the daily cap applied.

    `minutes_by_visit` is [(visit id, face-to-face minutes)]; the cap is used
    up by earlier visits first, so the result never depends on report order.
    """
    remaining = rules.daily_fee_cap_yen
    fees: dict[int, int] = {}
    for visit_id, minutes in sorted(minutes_by_visit):
        fee = min(fee_before_cap(minutes, rules), remaining)
        fees[visit_id] = fee
        remaining -= fee
    return fees


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres: enough to tell 'at the company' from 'elsewhere'."""
    radius = 6_371_000.0
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
