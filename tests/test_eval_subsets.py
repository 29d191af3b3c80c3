"""The fixed evaluation subset for slow backends, and the generation figures of the report."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import AssistantError
from assistant.evaluation import (
    SUBSETS_DIR,
    fallback_kind,
    generation_markdown,
    generation_summary,
    load_questions,
    load_subset,
    select_subset,
    stratified_subset,
)
from assistant.generation import FALLBACK_ECHO, FALLBACK_MODEL_FAILED, FALLBACK_NO_CITATIONS
from assistant.settings import PROJECT_ROOT
from assistant.types import Answer

QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"


def _items(n_per_category: int, categories: str = "abc") -> list[dict[str, Any]]:
    return [{"id": f"{c}{i:03d}", "category": c} for i in range(n_per_category) for c in categories]


def test_the_rule_takes_the_lowest_hashes_per_category_in_file_order() -> None:
    items = _items(12)
    chosen = stratified_subset(items, 3, "salt")
    assert Counter(str(i)[0] for i in chosen) == {"a": 3, "b": 3, "c": 3}
    expected_a = sorted((f"a{i:03d}" for i in range(12)), key=lambda i: hashlib.sha256(f"salt:{i}".encode()).digest())
    assert [i for i in chosen if i.startswith("a")] == sorted(expected_a[:3], key=lambda i: int(i[1:]))
    assert stratified_subset(list(reversed(items)), 3, "salt") == list(reversed(chosen))
    assert stratified_subset(items, 3, "other salt") != chosen


def test_a_small_category_is_taken_whole() -> None:
    items: list[dict[str, Any]] = [*_items(10, "ab"), {"id": "z1", "category": "z"}]
    assert "z1" in stratified_subset(items, 4, "salt")


#: The categories of question set version 10, from which local-40 was drawn (its figures in
#: docs/local-llm.md are for these). A later version may add categories; re-drawing the subset
#: for them means measuring the local model again.
LOCAL_40_CATEGORIES = {
    "adversarial",
    "false_premise",
    "lookup",
    "multi",
    "number",
    "paraphrase",
    "section",
    "uncovered",
}


def test_the_committed_local_subset_is_forty_dev_questions_five_per_category() -> None:
    ids = load_subset("local-40")
    dev = {str(i["id"]): i for i in load_questions(QUESTIONS, "dev")}
    assert len(ids) == len(set(ids)) == 40
    assert set(ids) <= set(dev), "the subset must come from the dev split only"
    categories = Counter(dev[i]["category"] for i in ids)
    assert categories == dict.fromkeys(LOCAL_40_CATEGORIES, 5)


def test_a_subset_is_found_by_name_or_path_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    own = tmp_path / "mine.txt"
    own.write_text("# a comment\nq001\n\nq003  # why\n", encoding="utf-8")
    assert load_subset(str(own)) == ["q001", "q003"]
    assert load_subset("local-40") == load_subset(str(SUBSETS_DIR / "local-40.txt"))
    with pytest.raises(AssistantError, match="local-40"):
        load_subset("no-such-subset")
    with pytest.raises(AssistantError, match="q999"):
        select_subset([{"id": "q001"}], ["q001", "q999"])


@pytest.mark.parametrize(
    ("note", "kind"),
    [
        (None, None),
        (FALLBACK_NO_CITATIONS, "no valid citation"),
        (FALLBACK_ECHO, "echoed instructions"),
        (FALLBACK_MODEL_FAILED.format(reason="APITimeoutError: Request timed out."), "timeout"),
        (FALLBACK_MODEL_FAILED.format(reason="APIConnectionError: Connection error."), "model error"),
    ],
)
def test_fallbacks_are_classified_by_their_note(note: str | None, kind: str | None) -> None:
    assert fallback_kind(note) == kind


def _answer(**fields: object) -> Answer:
    return Answer(question="q", text="t", refused=False, citations=(), retrieved=(), backend="local", **fields)  # type: ignore[arg-type]


def test_the_generation_summary_counts_fallbacks_guard_and_timings() -> None:
    results: list[dict[str, Any]] = [
        {"backend": "local", "refused": False, "note": None, "timings_ms": {"first_token": 1000.0, "total": 3000.0}},
        {"backend": "local", "refused": True, "note": None, "timings_ms": {"first_token": 2000.0, "total": 2500.0}},
        {
            "backend": "extractive",
            "refused": False,
            "note": FALLBACK_NO_CITATIONS,
            "timings_ms": {"first_token": 3000.0, "total": 5000.0},
        },
        {"error": {"code": "invalid_question"}, "timings_ms": {}},
    ]
    answers = [
        _answer(),
        _answer(),
        _answer(removed_citations=2, dropped_sentences=("a [9].",), uncited_sentences=("b", "c")),
    ]
    summary = generation_summary(results, answers, "local")
    assert (summary["n"], summary["answered_by_model"], summary["model_refusals"]) == (3, 2, 1)
    assert summary["fallbacks"] == 1 and summary["fallback_reasons"] == {"no valid citation": 1}
    assert summary["fallback_rate"] == pytest.approx(1 / 3)
    assert (summary["removed_markers"], summary["dropped_sentences"], summary["uncited_sentences"]) == (2, 1, 2)
    assert summary["answers_touched_by_guard"] == 1
    assert summary["first_token_ms_p50"] == 2000.0 and summary["total_ms_mean"] == pytest.approx(3500.0)
    table = generation_markdown(summary)
    assert "| extractive fallback | 1 (33%): no valid citation 1 |" in table
    assert "2 / 1 / 2 (in 1 answers)" in table
