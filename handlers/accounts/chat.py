"""Linking a chat account to the person staff registered, with a one-time code.

An expert (or an SME contact) receives a code such as ABCD-2345 from the
secretariat and sends it from LINE, Telegram, Slack or the web chat
(「連携 ABCD-2345」, Telegram's /start ABCD2345 deep link, or just the code).
From then on that account acts as the registered person: only linked experts
can check in and only a company's linked contacts can confirm a visit.
Codes of other purposes (an SME confirming one visit) are handed to the
capability that registered a redeemer for them.
"""

from __future__ import annotations

from pathlib import Path
import re

from bot.handler import Handler, Turn
from bot.i18n import add_locale_dir
from bot.messages import Option, Reply
from handlers.accounts import link_codes
from handlers.accounts.models import LinkCode
from handlers.accounts.registry import has_own_data, link_identity
from bot.storage.models import Person

add_locale_dir(Path(__file__).resolve().parent / "locales")

_STATUS = re.compile(r"(/whoami|連携状況|アカウント情報|私は誰)")
#: The link code waiting for the account owner's yes (kept in the conversation, never in a button value).
PENDING_LINK = "account_pending_link"
CONFIRM_CHOICE = "account:link:"


def role_label(turn: Turn, person: Person) -> str:
    return turn.t(f"role_{person.role}")


class AccountHandler(Handler):
    name = "account"

    def claims(self, turn: Turn) -> bool:
        if (turn.message.choice or "").startswith(CONFIRM_CHOICE):
            return True
        return bool(turn.text) and (link_codes.code_in_message(turn.text) is not None
                                    or bool(_STATUS.fullmatch(turn.text)))

    def on_command(self, turn: Turn) -> list[Reply]:
        if (turn.message.choice or "").startswith(CONFIRM_CHOICE):
            return self._confirmed(turn, turn.message.choice == f"{CONFIRM_CHOICE}yes")
        code = link_codes.code_in_message(turn.text)
        if code is None:
            return self._status(turn)
        client_ip = turn.message.client.get("ip")
        settings = turn.services.settings
        if link_codes.over_limits(turn.session, client_ip, settings.limits.link_code_failures_per_ip,
                                  settings.limits.link_code_failures_global):
            return [Reply(text=turn.t("account_code_too_many_attempts"))]
        try:
            row = link_codes.find(turn.session, code, turn.person.id)
        except link_codes.CodeError as error:
            if error.reason != "too_many_attempts":
                link_codes.count_failure(turn.session, client_ip)
                turn.audit("code.rejected", subject_type="channel_identity", data={"reason": error.reason})
            return [Reply(text=turn.t(f"account_code_{error.reason}"))]
        if row.purpose != "link":
            return link_codes.REDEEMERS[row.purpose](turn, row)
        target = turn.session.get(Person, row.person_id)
        assert target is not None
        identity = turn.identity()
        if identity.verified and identity.person_id == target.id:
            return [Reply(text=turn.t("account_already_linked", name=target.display_name))]
        if identity.person_id != target.id and has_own_data(turn.session, identity.person_id):
            # Moving this person's answers to someone else's account needs their own yes, with the name shown.
            turn.set_flow_state({**turn.flow_state, PENDING_LINK: row.id})
            return [Reply(text=turn.t("account_link_confirm", name=target.display_name),
                          options=[Option(label=turn.t("account_link_yes"), value=f"{CONFIRM_CHOICE}yes"),
                                   Option(label=turn.t("account_link_no"), value=f"{CONFIRM_CHOICE}no")])]
        return self._link(turn, row, target)

    def _confirmed(self, turn: Turn, yes: bool) -> list[Reply]:
        state = turn.flow_state
        code_id = state.pop(PENDING_LINK, None)
        turn.set_flow_state(state)
        if not yes:
            return [Reply(text=turn.t("account_link_declined"))]
        row = turn.session.get(LinkCode, code_id, with_for_update=True) if code_id else None
        if row is None or row.used_at is not None or row.purpose != "link":
            return [Reply(text=turn.t("account_link_stale"))]
        target = turn.session.get(Person, row.person_id)
        assert target is not None
        if row.expires_at <= link_codes.utcnow():
            return [Reply(text=turn.t("account_code_expired"))]
        return self._link(turn, row, target)

    def _link(self, turn: Turn, row: LinkCode, target: Person) -> list[Reply]:
        identity = turn.identity()
        link_codes.consume(row, target.id)
        link_identity(turn.session, identity, target)
        turn.person = target
        return [Reply(text=turn.t("account_linked", name=target.display_name, role=role_label(turn, target)))]

    def _status(self, turn: Turn) -> list[Reply]:
        identity = turn.identity()
        state = turn.t("account_status_linked" if identity.verified else "account_status_unlinked")
        name = turn.person.display_name or "-"
        return [Reply(text=turn.t("account_status", name=name, role=role_label(turn, turn.person), state=state))]
