"""Capabilities, one package each. Importing this package registers every handler in it."""

import importlib

# The chat modules, in the order pkgutil found them when each capability was one file.
for _module in ("accounts", "escalation", "faq", "hearing", "menu", "visits"):
    importlib.import_module(f"{__name__}.{_module}.chat")
