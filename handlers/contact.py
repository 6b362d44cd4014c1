"""「担当者に問い合わせる」: how to reach a person at the secretariat.

Tells the user the secretariat's contact and hours from the settings. The
escalation capability (tickets to call-center staff) takes over this button
when it is installed; until then the user at least knows where to call.
"""

from __future__ import annotations

from bot.handler import Handler, Turn, register
from bot.i18n import add_strings
from bot.messages import Option, Reply
from bot.storage.models import Person

add_strings("ja", {
    "contact_menu": "担当者に問い合わせる",
    "contact_info": "担当者へのお問い合わせは、事務局の窓口までお願いします。\n{contact}\n受付時間：{hours}",
})
add_strings("en", {
    "contact_menu": "Ask a staff member",
    "contact_info": "Please contact the secretariat.\n{contact}\nHours: {hours}",
})


@register
class ContactHandler(Handler):
    name = "contact"
    triggers = ("担当者に問い合わせる", "担当者と話したい", "人と話したい", "電話したい", "問い合わせ先")
    choice_prefix = "contact:"

    def on_command(self, turn: Turn) -> list[Reply]:
        settings = turn.services.settings
        return [Reply(text=turn.t("contact_info", contact=settings.secretariat_contact,
                                  hours=settings.secretariat_hours))]

    def menu_options(self, locale: str, person: Person | None = None) -> list[Option]:
        from bot.i18n import t

        return [Option(label=t("contact_menu", locale), value="contact:human")]
