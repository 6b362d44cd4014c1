"""Greeting, help and the main menu."""

from bot.capability import Capability
from handlers.menu.chat import MenuHandler

MENU = Capability(name="menu", handler=MenuHandler())
