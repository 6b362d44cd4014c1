"""benchmarks/knowledge_eval.py: its command line, and its program-window evaluation (each question asked of
its own program's sources, as a conversation at /p/<program>/ is answered)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.services import Services

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "knowledge_eval.py"


def _knowledge_eval(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """benchmarks/knowledge_eval.py as a module (its settings of the environment undone after the test)."""
    import importlib.util

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("knowledge_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "knowledge_eval", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_benchmark_script_shows_its_help_instead_of_reading_the_option_as_a_corpus() -> None:
    """`knowledge_eval.py --help` printed nothing and crashed: the older form took its first argument as a
    corpus folder. Each subcommand has its own help."""
    for argv in (["--help"], ["lodo", "--help"], ["heldout", "--help"]):
        done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120,
                              cwd=ROOT)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
        assert done.stdout.startswith("usage: knowledge_eval.py"), argv
    top = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT).stdout
    assert all(command in top for command in ("lodo", "heldout", "legacy"))
    lodo = subprocess.run([sys.executable, str(SCRIPT), "lodo", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT).stdout
    assert "--window" in lodo and "--gate-on" in lodo


def test_the_older_form_without_a_subcommand_still_names_a_corpus_and_its_question_files(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _knowledge_eval(monkeypatch)
    args = bench.parse_args(["../shared/corpus", "a.jsonl", "b.jsonl"])
    assert (args.command, args.corpus, args.questions) == ("legacy", "../shared/corpus", ["a.jsonl", "b.jsonl"])
    args = bench.parse_args(["lodo", "--window", "program", "--gate-on", "both"])
    assert (args.command, args.window, args.gate_on) == ("lodo", "program", "both")
    with pytest.raises(SystemExit) as exited:
        bench.parse_args(["lodo", "--window", "everything"])
    assert exited.value.code == 2


def test_a_programs_window_holds_its_own_documents_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each corpus document is one program; the sample guide and its FAQ are one (the expert-dispatch sample)."""
    bench = _knowledge_eval(monkeypatch)
    kanto = bench.window_of("kanto-successor-network-call.md")
    assert kanto.allows("/x/corpus/kanto-successor-network-call.md")
    assert not kanto.allows("/x/corpus/kyushu-sme-talent-call.md")
    sample = bench.window_of("sample_kb")
    assert sample.allows("/x/sample_kb/expert-dispatch-guide.md") and sample.allows("/x/sample_kb/expert-dispatch-faq.yaml")
    assert not sample.allows("/x/sample_kb/regional-dx-call.md")
    assert kanto.name != sample.name


def test_in_the_program_window_a_question_is_answered_from_its_programs_sources_only(
        learned_sample_kb: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The whole index lets another program's document answer a question written for one program (the
    regional-DX call's 7,000万円 for the expert-dispatch guide's reader); in the program's window, as a
    conversation at /p/expert-dispatch/ is answered, only the guide and its FAQ are candidates. Out-of-scope
    questions are asked in the window of the document they were written against too."""
    bench = _knowledge_eval(monkeypatch)
    rows = [{"id": "w1", "question": "委託する金額は1つの支援地域あたり最大いくら？", "document": "expert-dispatch-guide.md",
             "in_scope": False, "style": "polite"},
            {"id": "w2", "question": "謝金は1時間あたりいくらですか", "document": "expert-dispatch-guide.md",
             "answer_span": "1時間あたり5,280円", "expect_any": ["5,280円"], "style": "polite"}]
    options = bench.RetrievalOptions()
    whole = bench.extract(learned_sample_kb, rows, options, tmp_path, "t-index")
    window = bench.extract(learned_sample_kb, rows, options, tmp_path, "t-window", window="program")
    whole_sources = {c.hit.source.name for c in whole[0].candidates}
    assert "regional-dx-call.md" in whole_sources
    for record in window:
        assert record.candidates
        assert {c.hit.source.name for c in record.candidates} <= bench.SAMPLE_DOCUMENTS, record.question
    assert window[1].correct.any() and window[1].span.any()
    assert [r.id for r in window] == ["w1", "w2"] and [r.fold for r in window] == ["sample_kb", "sample_kb"]
    # cached apart: a second pass reads each from its own file
    assert {c.hit.source.name for c in bench.extract(learned_sample_kb, rows, options, tmp_path, "t-window",
                                                       window="program")[0].candidates} <= bench.SAMPLE_DOCUMENTS


def test_each_folds_model_is_tested_in_both_windows_and_the_gate_learns_from_the_chosen_ones(
        learned_sample_kb: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`lodo --window program`: one model per fold, tested on the same questions asked of the whole index and
    in their program's window; `--gate-on` gives the gate the whole index's questions, the window's or both."""
    from dataclasses import replace

    bench = _knowledge_eval(monkeypatch)
    questions = [("謝金は1時間あたりいくらですか", "5,280円", True), ("宿泊費の上限はいくら？", "9,800円", True),
                 ("委託する金額は最大いくら？", "", False), ("日当はいくら出ますか", "1,100円", True),
                 ("私有車の交通費は1kmいくら？", "37円", True), ("採択の予定は何件？", "", False)]
    rows = [{"id": f"g{i}", "question": q, "document": "expert-dispatch-guide.md", "in_scope": inside,
             "expect_any": [fact] if fact else [], "answer_span": fact, "style": "polite"}
            for i, (q, fact, inside) in enumerate(questions)]
    options = bench.RetrievalOptions()
    # three made-up documents of two questions each (one answerable at least), so that each fold's gate has
    # two others to learn from, each ranked by a ranker trained without it
    folds = "abacbc"
    whole = [replace(r, fold=folds[i]) for i, r in enumerate(bench.extract(learned_sample_kb, rows, options,
                                                                            tmp_path, "g-index"))]
    window = [replace(r, fold=folds[i]) for i, r in enumerate(bench.extract(
        learned_sample_kb, rows, options, tmp_path, "g-window", window="program"))]
    assert bench.gate_sets_for(whole, window, "index") is None
    assert bench.gate_sets_for(whole, window, "program") == (window,)
    assert bench.gate_sets_for(whole, window, "both") == (whole, window)
    with pytest.raises(ValueError):
        bench.gate_sets_for(whole, None, "program")
    log: list[dict] = []
    results = bench.lodo_windows(whole, {"whole index": whole, "program window": window}, log=log, ranker="linear",
                                 gate_sets=bench.gate_sets_for(whole, window, "both"))
    for name in ("whole index", "program window"):
        assert [r.fold for r in results[name]] == ["a", "b", "c"]
        assert sum(r.answerable + r.out_of_scope for r in results[name]) == len(rows)
        assert sorted(row["id"] for row in log if row["window"] == name) == sorted(r["id"] for r in rows)
    assert {row["source"] for row in log if row["window"] == "program window"} <= bench.SAMPLE_DOCUMENTS
    # the whole index is what a general entry point searches: its answers are gated by the general threshold,
    # set on the whole index's questions alone and never below the window's
    for row in log:
        if "window_threshold" in row:
            assert (row["threshold"] >= row["window_threshold"] if row["window"] == "whole index"
                    else row["threshold"] == row["window_threshold"])
    both = bench.train(whole, ranker="linear", gate_sets=bench.gate_sets_for(whole, window, "both"))
    assert both.gate.general_threshold is not None and both.gate.general_threshold >= both.gate.threshold
    assert bench.train(whole, ranker="linear", gate_sets=(window,)).gate.general_threshold is None, \
        "a gate that learned from no whole-index question has no general threshold of its own"
    # `lodo --ablation --variants alone`: only the rows asked for are run (the full pipeline's and the reference
    # always), so that a long run can complete the rows another run did not reach
    printed: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *parts, **_: printed.append(" ".join(map(str, parts))))
    bench.ablation(learned_sample_kb, rows, whole, tmp_path, results, {"ranker": "linear", "tag": "g-index"},
                   windowed=window, variants=("alone",))
    labels = [line.split(" | ")[0].lstrip("| ") for line in printed if line.startswith("| ") and "%" in line]
    assert labels == ["full pipeline", "classic answerer (reference, no training)",
                      "lambdarank trees alone (no linear ranker beside them)", "linear pairwise ranker alone (no trees)"]
    assert bench.parse_args(["lodo", "--ablation", "--variants", "candidate-context,alone"]).variants == \
        "candidate-context,alone"


def test_a_unit_holds_a_gold_span_copied_with_its_list_mark_or_running_over_two_sentences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers copy a list item with its mark (「・会場は…」) and a span over two sentences (「…メールで
    お願いします。電話での…受付できません。」); units show an item without its mark and cut at 。. Both were
    counted as held by no unit, so a right FAQ pair was a negative and the span recall undercounted."""
    from bot.text import compact
    from knowledge.units import units_of

    bench = _knowledge_eval(monkeypatch)
    text = ("お問い合わせは電子メールでお願いします。電話でのお問い合わせは受付できません。\n"
            "ワークショップの概要：\n・会場は東京都内または埼玉県内を想定。\n・回数は2～3回を想定。")
    units = units_of("text", "8. 問い合わせ", text, None)

    def held(span: str, expect: list[str]) -> set[str]:
        return {u.text for u in units
                if bench.holds_answer(compact(span), [compact(e) for e in expect], u.text, u.core)}

    assert held("・会場は東京都内または埼玉県内を想定。", ["東京都内"]) == {
        "ワークショップの概要：\n・会場は東京都内または埼玉県内を想定。",
        "ワークショップの概要：\n・会場は東京都内または埼玉県内を想定。\n・回数は2～3回を想定。"}
    assert held("お問い合わせは電子メールでお願いします。電話でのお問い合わせは受付できません。", ["電子メール"]) == {
        "お問い合わせは電子メールでお願いします。"}
    # a sentence inside the span that does not state the answer is not the answer's unit
    assert held("お問い合わせは電子メールでお願いします。電話でのお問い合わせは受付できません。", ["電話"]) == {
        "電話でのお問い合わせは受付できません。"}
    assert held("回数は2～3回", ["2~3回"]) and not held("", ["2~3回"]) and not held("・", ["2~3回"])


def test_the_feature_cache_written_when_run_as_a_script_loads_in_another_benchmark(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """knowledge_eval.py run as a script pickles its records as `__main__.Record`; excerpt_eval.py, which imports
    it, could not load that cache (AttributeError) and computed nothing."""
    import pickle

    bench = _knowledge_eval(monkeypatch)
    result = bench.FoldResult("fold", 1, 2, 3, 4, 5, 6, 7)
    main = sys.modules["__main__"]
    monkeypatch.setattr(bench.FoldResult, "__module__", "__main__")
    monkeypatch.setattr(main, "FoldResult", bench.FoldResult, raising=False)
    cache = tmp_path / "features.pkl"
    cache.write_bytes(pickle.dumps([result]))  # as the script itself writes it
    monkeypatch.delattr(main, "FoldResult")
    with pytest.raises(AttributeError):
        pickle.loads(cache.read_bytes())
    assert bench.load_cache(cache) == [result]


def test_the_feature_cache_is_keyed_by_every_part_of_the_labelling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached records keep each unit's labels. The key held the span rules' source only, so a change of
    `label_units` (its 300-character answer head) or of SPAN_PART_MIN_CHARS read stale labels from the cache."""
    import inspect

    bench = _knowledge_eval(monkeypatch)
    before = bench.labelling_version()
    assert inspect.getsource(bench.label_units) in before
    monkeypatch.setattr(bench, "SPAN_PART_MIN_CHARS", bench.SPAN_PART_MIN_CHARS + 1)
    assert bench.labelling_version() != before
