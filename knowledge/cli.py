"""`madoguchi knowledge ...`: ingest, ask, and the answer/eval contract."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.commands import services_for_command as create
from bot.programs import catalog_for
from bot.references import ticket_number
from knowledge import faq_review as review
from knowledge.ingest import ingest_paths

knowledge_app = typer.Typer(help="知識ベース / knowledge base", no_args_is_help=True)
console = Console()


def _services():  # type: ignore[no-untyped-def]

    return create()


def default_targets(services) -> list[Path]:  # type: ignore[no-untyped-def]
    """What `ingest` with no paths reads: MADOGUCHI_KNOWLEDGE__PATHS (shared by every program), the published
    staff FAQ, and every program's own sources (its YAML's knowledge.sources)."""

    targets = [Path(p).resolve() for p in services.settings.default_knowledge_paths]
    for program in catalog_for(services):
        targets += [p for p in program.source_paths() if not any(p == t or p.is_relative_to(t) for t in targets)]
    return targets


@knowledge_app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(None, help="Files or folders (default: MADOGUCHI_KNOWLEDGE__PATHS and every "
                                                  "program's sources)"),
    reset: bool = typer.Option(False, "--reset", help="Drop the index first and rebuild it"),
    program_id: str = typer.Option(None, "--program", help="Ingest this program's sources (its YAML's "
                                                           "knowledge.sources); given paths must lie inside them"),
) -> None:
    """Ingest manuals and FAQ tables (incremental by content hash)."""

    services = _services()
    targets = paths or default_targets(services)
    if program_id is not None:
        program = catalog_for(services).get(program_id)
        if program is None:
            console.print(f"[red]事業 {program_id} はありません[/]（madoguchi programs list）", highlight=False)
            raise typer.Exit(2)
        own = program.source_paths()
        if not own:
            console.print(f"[red]事業 {program_id} の knowledge.sources が空です[/]: {program.path} に資料のパスを書いてください",
                          highlight=False)
            raise typer.Exit(2)
        outside = [p for p in paths or [] if not program.owns(p.resolve())]
        if outside:
            # A source belongs to the program whose file lists it: ingesting it "for" another would not scope it.
            console.print(f"[red]{', '.join(map(str, outside))} は事業 {program_id} の knowledge.sources にありません[/]"
                          f"（{program.path} に追加してください）", highlight=False)
            raise typer.Exit(2)
        targets = paths or own
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("取り込み中", total=None)
        # Embedding is most of a cold ingest: its own bar counts the texts (passages and answer units).
        embedding = progress.add_task("埋め込み", total=None, visible=False)
        try:
            report = ingest_paths(
                services, targets, reset=reset,
                on_start=lambda n: progress.update(task, total=n),
                on_file=lambda r: progress.update(task, advance=0 if r.status == "removed" else 1,
                                                  description=Path(r.path).name),
                on_embed=lambda done, total: progress.update(embedding, completed=done, total=total,
                                                             visible=total > 0),
            )
        except FileNotFoundError as exc:
            console.print(f"[red]見つかりません / not found:[/] {exc}")
            raise typer.Exit(2) from exc
    embedded = ", ".join(f"{count} {kind}" for kind, count in report.embedded_by_kind.items())
    table = Table(title=f"ingest: {report.seconds:.1f}s, embedded: {embedded or 'nothing (all cached)'}")
    for column in ("file", "status", "chunks", "edition", "message"):
        table.add_column(column)
    for result in report.results:
        style = {"error": "red", "new": "green", "updated": "yellow"}.get(result.status, "")
        table.add_row(Path(result.path).name, f"[{style}]{result.status}[/]" if style else result.status,
                      str(result.chunks) if result.chunks else "", escape(result.edition), escape(result.message))
    console.print(table)
    console.print(f"files: {len(report.results)}  chunks: {report.chunks}  "
                  f"skipped: {report.count('unchanged')}  errors: {report.count('error')}  "
                  f"removed: {report.count('removed')}")


@knowledge_app.command("ask")
def ask(question: str = typer.Argument(..., help="質問文"),
        program_id: str = typer.Option(None, "--program", help="この事業の窓口として答える（その事業と共有の資料だけ）")) -> None:
    """Ask one question and show the answer with its sources and confidence."""

    services = _services()
    catalog = catalog_for(services)
    answer = services.knowledge.ask(question, sources=catalog.source_filter(program_id),
                                    general=catalog.general_entry(program_id))
    console.print(escape(answer.text) if answer.confident else f"[yellow](not confident)[/] {escape(answer.body)}")
    console.print(f"confidence={answer.confidence:.3f} kind={answer.kind} features={answer.features}")
    for citation in answer.citations:
        console.print(f"  - {escape(citation.label())} ({escape(str(citation.source))}, {citation.score})")


@knowledge_app.command("answer")
def answer(
    questions: Path = typer.Option(..., "--in", help='JSONL: {"id", "question"}'),
    out: Path = typer.Option(..., "--out", help="JSONL answers"),
) -> None:
    """Answer every question of a JSONL file with the index in MADOGUCHI_DATA_DIR."""
    from knowledge.evaluation import answer_file  # the answering pipeline: not imported by `ingest`

    services = _services()
    # Asked as at the installation's general entry point, where no program is chosen (`/`).
    results = answer_file(services.knowledge, questions, out, general=catalog_for(services).general_entry(None))
    console.print(f"{len(results)} answers -> {out}")


@knowledge_app.command("eval")
def evaluate(
    questions: Path = typer.Option(..., "--questions", help="JSONL with expect_any / in_scope / source"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Answer the questions and print accuracy, abstention, precision, recall@5 and latency."""
    from knowledge.evaluation import answer_file, read_jsonl, score  # as in `answer`

    services = _services()
    with tempfile.TemporaryDirectory() as tmp:
        answers = answer_file(services.knowledge, questions, Path(tmp) / "answers.jsonl",
                              general=catalog_for(services).general_entry(None))
    report = score(read_jsonl(questions), answers)
    if as_json:
        console.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    table = Table(title=f"eval: {questions.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("in-scope accuracy", f"{report.accuracy:.1%} ({report.in_scope} questions)")
    table.add_row("out-of-scope abstention", f"{report.abstention:.1%} ({report.out_of_scope} questions)")
    table.add_row("precision of confident answers", f"{report.precision:.1%}")
    table.add_row("recall@5 (source document)", f"{report.recall_at_5:.1%}")
    table.add_row("latency p50 / p95", f"{report.p50_ms:.1f} ms / {report.p95_ms:.1f} ms")
    console.print(table)
    for failure in report.failures:
        console.print(f"  [red]x[/] {escape(failure)}")


faq_app = typer.Typer(help="事務局回答の FAQ 候補 / FAQ candidates from staff answers", no_args_is_help=True)
knowledge_app.add_typer(faq_app, name="faq")


@faq_app.command("review")
def faq_review(
    publish_all: bool = typer.Option(False, "--publish-all", help="確認せずにすべて公開する（一括処理用）"),
    reviewer: str = typer.Option("cli", help="監査ログに残すレビュー担当者名"),
    program: str = typer.Option(None, "--program", help="この事業の候補だけ（既定: すべての事業）"),
) -> None:
    """Go through pending candidates (of one program with --program): publish (optionally edited, and to the
    program chosen, or shared with every program), reject or skip each."""

    services = _services()
    catalog = catalog_for(services)
    if program is not None and catalog.get(program) is None:
        console.print(f"[red]事業 {program} はありません[/]（{', '.join(p.id for p in catalog)}）", highlight=False)
        raise typer.Exit(2)
    candidates = [c for c in review.pending(services) if program is None or catalog.owner_id(c.program) == program]
    if not candidates:
        console.print("レビュー待ちの FAQ 候補はありません。")
        return
    for candidate in candidates:
        console.rule(f"候補 #{candidate.id}（お問い合わせ {ticket_number(candidate.ticket_id or 0)}、"
                     f"事業 {catalog.owner_id(candidate.program)}）")
        console.print(f"[bold]Q[/] {escape(candidate.question)}\n[bold]A[/] {escape(candidate.answer)}", highlight=False)
        action = "p" if publish_all else typer.prompt("公開(p) / 編集して公開(e) / 却下(r) / 保留(s)", default="s")
        if action == "e":
            question = typer.prompt("質問", default=candidate.question)
            answer_text = typer.prompt("回答", default=candidate.answer)
            target = catalog.owner_id(candidate.program)
            if len(catalog.programs) > 1:
                target = typer.prompt("事業（* = すべての事業で共有）", default=target)
            try:
                review.publish(services, candidate.id, reviewer, question=question, answer=answer_text,
                               program=None if target == "*" else target, shared=target == "*")
            except ValueError as error:
                console.print(f"[red]{error}[/]（保留しました）", highlight=False)
                continue
        elif action == "p":
            review.publish(services, candidate.id, reviewer)
        elif action == "r":
            review.reject(services, candidate.id, reviewer)
            console.print("却下しました。")
            continue
        else:
            continue
        console.print("[green]公開しました[/]（知識ベースに取り込み済み）")
