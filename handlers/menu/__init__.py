"""Greeting, help and the main menu."""
