"""Expert visits (専門家派遣): planning, check-in/out, SME confirmation, program rules, monthly reports.

The chat side is `handlers/visits.py`; this package holds what does not
depend on chat, so the CLI, the staff API and the handler share one set of
rules and state transitions.
"""
