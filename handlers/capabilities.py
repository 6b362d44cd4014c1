"""The installed capabilities, in order: the one place that says who gets a message first.

Typed commands are claimed in this order; question handlers answer in their
`question_priority` order; the main menu lists buttons in this order. Adding a
capability is one line here (see docs/ARCHITECTURE.md).
"""

from bot.capability import Capability
from handlers.accounts.capability import ACCOUNTS
from handlers.escalation.capability import ESCALATION
from handlers.faq.capability import FAQ
from handlers.hearing.capability import HEARING
from handlers.menu.capability import MENU
from handlers.visits.capability import VISITS

CAPABILITIES: tuple[Capability, ...] = (ACCOUNTS, ESCALATION, FAQ, HEARING, MENU, VISITS)
