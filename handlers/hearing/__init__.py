"""Questionnaires defined in YAML (the hearing sheet first): schema, answer parsing, progress, export.

The chat flow that walks a person through a form is `handlers/hearing.py`;
this package holds what does not depend on chat: the form definitions and
their validation, turning a typed answer into a value, deciding which
question comes next, and exporting responses for the secretariat.
"""


def reference_number(response_id: int) -> str:
    """The number an applicant quotes on the phone: H-000123."""
    return f"H-{response_id:06d}"
