"""Capabilities, one package each; `handlers/capabilities.py` lists them in order."""
