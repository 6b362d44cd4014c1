"""Escalation: tickets to a person, staff accounts, call-center hours and staff API tokens."""
