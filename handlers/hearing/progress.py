"""Which questions apply, which comes next, and how far along the person is.

Answers are a dict {question id: value}; a key present with None means the
optional question was skipped. A question whose `when` condition is not met
is not asked, not counted in 「3/18」 and not exported, even if it was
answered before an earlier answer changed.
"""

from __future__ import annotations

from typing import Any

from handlers.hearing.schema import Form, Question


def applicable_questions(form: Form, answers: dict[str, Any]) -> list[Question]:
    """The questions to ask given the answers so far, in form order."""
    return [q for q in form.questions if q.when is None or q.when.holds(answers.get(q.when.question))]


def next_question(form: Form, answers: dict[str, Any]) -> Question | None:
    """The first applicable question not yet answered or skipped; None = ready for the summary."""
    return next((q for q in applicable_questions(form, answers) if q.id not in answers), None)


def possible_questions(form: Form, answers: dict[str, Any]) -> list[Question]:
    """Questions that apply or still may (their condition's question is not answered yet).

    Used for the 「n/total」 count so the total only ever shrinks as answers rule
    questions out, instead of growing when a condition turns true.
    """
    return [q for q in form.questions
            if q.when is None or q.when.question not in answers or q.when.holds(answers.get(q.when.question))]


def position(form: Form, answers: dict[str, Any], question_id: str) -> tuple[int, int]:
    """(n, total) for 「n/total」."""
    ids = [q.id for q in possible_questions(form, answers)]
    return (ids.index(question_id) + 1 if question_id in ids else len(ids), len(ids))


def effective_answers(form: Form, answers: dict[str, Any]) -> dict[str, Any]:
    """Only the answers of questions that apply: what is submitted and exported."""
    return {q.id: answers.get(q.id) for q in applicable_questions(form, answers)}


def missing_required(form: Form, answers: dict[str, Any]) -> list[Question]:
    return [q for q in applicable_questions(form, answers) if q.required and answers.get(q.id) is None]
