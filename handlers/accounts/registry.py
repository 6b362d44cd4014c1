"""Staff register the people and companies a program knows; chat accounts are linked to them.

A chat account starts as an anonymous person (created by the engine on the
first message). Redeeming a link code re-points that account's identity to
the registered person and moves what the anonymous person had (the
conversation on that channel, hearing-sheet drafts) so nothing the user did
before linking is lost.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.storage import audit
from bot.storage.models import ChannelIdentity, Company, Conversation, Message, Person, Role
from handlers.hearing.models import FormResponse
from handlers.hearing.answers import corporate_number_is_valid

REGISTRABLE_ROLES = {r.value for r in Role}


class RegistryError(ValueError):
    """A row staff asked to register is not valid; the message says which field and why (Japanese)."""


@dataclass
class ImportResult:
    created: int
    errors: list[str]


def add_company(session: Session, name: str, *, corporate_number: str | None = None, address: str | None = None,
                latitude: float | None = None, longitude: float | None = None, industry: str | None = None,
                actor_person_id: int | None = None) -> Company:

    name = (name or "").strip()
    if not name:
        raise RegistryError("企業名が空です")
    if corporate_number and not corporate_number_is_valid(corporate_number):
        raise RegistryError(f"法人番号 {corporate_number} が正しくありません（13桁・検査数字）")
    if (latitude is None) != (longitude is None):
        raise RegistryError("緯度と経度は両方指定してください")
    if latitude is not None and not (-90 <= latitude <= 90 and -180 <= (longitude or 0) <= 180):
        raise RegistryError("緯度・経度の範囲が正しくありません")
    if corporate_number and session.execute(
            select(Company.id).where(Company.corporate_number == corporate_number)).first():
        raise RegistryError(f"法人番号 {corporate_number} の企業は登録済みです")
    company = Company(name=name, corporate_number=corporate_number or None, address=address, latitude=latitude,
                      longitude=longitude, industry=industry)
    session.add(company)
    session.flush()
    audit.record(session, "company.registered", actor_person_id=actor_person_id, subject_type="company",
                 subject_id=company.id, data={"name": name})
    return company


def add_person(session: Session, role: str, name: str, *, organisation: str | None = None,
               company_id: int | None = None, actor_person_id: int | None = None) -> Person:
    if role not in REGISTRABLE_ROLES:
        raise RegistryError(f"役割 {role} は使えません（{', '.join(sorted(REGISTRABLE_ROLES))}）")
    name = (name or "").strip()
    if not name:
        raise RegistryError("氏名が空です")
    if company_id is not None and session.get(Company, company_id) is None:
        raise RegistryError(f"企業 ID {company_id} はありません")
    person = Person(role=role, display_name=name, organisation=organisation, company_id=company_id)
    session.add(person)
    session.flush()
    audit.record(session, "person.registered", actor_person_id=actor_person_id, subject_type="person",
                 subject_id=person.id, data={"role": role})
    return person


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]


def import_companies(session: Session, path: Path) -> ImportResult:
    """CSV columns: name, corporate_number, address, latitude, longitude, industry (one company per row)."""
    created, errors = 0, []
    for line, row in enumerate(_read_csv(path), start=2):
        try:
            with session.begin_nested():
                add_company(session, row.get("name", ""), corporate_number=row.get("corporate_number") or None,
                            address=row.get("address") or None, industry=row.get("industry") or None,
                            latitude=float(row["latitude"]) if row.get("latitude") else None,
                            longitude=float(row["longitude"]) if row.get("longitude") else None)
            created += 1
        except (RegistryError, ValueError) as error:
            errors.append(f"{path.name}:{line}: {error}")
    return ImportResult(created, errors)


def import_people(session: Session, path: Path) -> ImportResult:
    """CSV columns: role, name, organisation, company_corporate_number or company_id."""
    created, errors = 0, []
    for line, row in enumerate(_read_csv(path), start=2):
        try:
            with session.begin_nested():
                company_id = int(row["company_id"]) if row.get("company_id") else None
                if row.get("company_corporate_number"):
                    company_id = session.execute(select(Company.id).where(
                        Company.corporate_number == row["company_corporate_number"])).scalar_one_or_none()
                    if company_id is None:
                        raise RegistryError(f"法人番号 {row['company_corporate_number']} の企業が未登録です")
                add_person(session, row.get("role", ""), row.get("name", ""),
                           organisation=row.get("organisation") or None, company_id=company_id)
            created += 1
        except (RegistryError, ValueError) as error:
            errors.append(f"{path.name}:{line}: {error}")
    return ImportResult(created, errors)


def has_own_data(session: Session, person_id: int) -> bool:
    """Whether linking this person would move answers of theirs (hearing sheets) to another person."""
    return session.execute(select(FormResponse.id).where(FormResponse.person_id == person_id).limit(1)).first() \
        is not None


def link_identity(session: Session, identity: ChannelIdentity, target: Person) -> None:
    """Tie a chat account to a registered person, moving the anonymous person's conversation and drafts."""
    previous = identity.person_id
    if previous == target.id:
        identity.verified = True
        return
    moved = session.execute(select(Conversation).where(
        Conversation.person_id == previous, Conversation.channel == identity.channel)).scalar_one_or_none()
    existing = session.execute(select(Conversation).where(
        Conversation.person_id == target.id, Conversation.channel == identity.channel)).scalar_one_or_none()
    if moved is not None and existing is not None:
        # The registered person already talks on this channel (another account): keep one thread, the
        # current one (the engine is writing this turn's replies to it), with the older messages moved in.
        session.execute(update(Message).where(Message.conversation_id == existing.id)
                        .values(conversation_id=moved.id))
        session.delete(existing)
        session.flush()
    if moved is not None:
        moved.person_id = target.id
    session.execute(update(FormResponse).where(FormResponse.person_id == previous)
                    .values(person_id=target.id))
    identity.person_id = target.id
    identity.verified = True
    session.flush()
    audit.record(session, "account.linked", actor_person_id=target.id, subject_type="channel_identity",
                 subject_id=identity.id, data={"channel": identity.channel, "previous_person_id": previous})
