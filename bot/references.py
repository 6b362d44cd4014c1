"""Reference numbers people quote on the phone, shared by the capabilities and the knowledge side."""


def ticket_number(ticket_id: int) -> str:
    """An escalation ticket: T-000123."""
    return f"T-{ticket_id:06d}"
