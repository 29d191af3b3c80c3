"""The pure evaluation metrics, with hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from assistant.core import Assistant
from assistant.errors import AssistantError
from assistant.evaluation import (
    CITATION_NOTE,
    MAX_ANSWERABLE_REFUSED,
    MIN_CITATION_PRECISION,
    UNKNOWN_RULE_NOTE,
    Scores,
    _citation_objective,
    _pick_threshold,
    calibrate,
    check_thresholds,
    citation_precision,
    citation_recall,
    dedupe,
    fit_citations,
    fit_unknown_rule,
    group_summaries,
    hedge_note,
    mean,
    pick_hedge_margin,
    pick_unknown_shift,
    recall_at_k,
    reciprocal_rank,
    run_eval,
    score_result,
    summarise,
    with_fit_note,
)
from assistant.relevance import Calibration

RETRIEVED = ["a", "b", "c", "d", "e", "f", "g"]


# --- recall@k ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "k", "expected"),
    [
        (["a"], 5, 1.0),
        (["f"], 5, 0.0),  # found, but below the cut
        (["a", "f"], 5, 0.5),
        (["b", "d", "z"], 5, 2 / 3),
        (["a", "b", "c", "d", "e", "f", "g", "h"], 5, 1.0),  # capped: 5 of 8 gold in 5 slots is perfect
        (["a", "b", "x", "y", "z", "w"], 5, 2 / 5),  # capped denominator min(6, 5) = 5
        (["a", "b", "c"], 2, 1.0),
        (["a", "a", "b"], 5, 1.0),  # duplicate gold ids count once
    ],
    ids=["hit", "below-cut", "half", "two-of-three", "capped-perfect", "capped-partial", "small-k", "dup-gold"],
)
def test_recall_at_k(gold: list[str], k: int, expected: float) -> None:
    assert recall_at_k(RETRIEVED, gold, k) == pytest.approx(expected)


def test_recall_at_k_with_empty_gold_is_perfect() -> None:
    assert recall_at_k(RETRIEVED, [], 5) == 1.0


def test_recall_at_k_with_nothing_retrieved() -> None:
    assert recall_at_k([], ["a"], 5) == 0.0


def test_recall_at_k_counts_duplicate_hits_once() -> None:
    assert recall_at_k(["a", "a", "b"], ["a", "c"], 2) == pytest.approx(0.5)


# --- MRR -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "expected"),
    [(["a"], 1.0), (["c"], 1 / 3), (["g", "c"], 1 / 3), (["z"], 0.0), ([], 0.0)],
    ids=["first", "third", "best-of-two", "missing", "empty-gold"],
)
def test_reciprocal_rank(gold: list[str], expected: float) -> None:
    assert reciprocal_rank(RETRIEVED, gold) == pytest.approx(expected)


# --- citations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cited", "gold", "expected"),
    [
        (["a", "b"], ["a", "b", "c"], 1.0),
        (["a", "x", "y", "z"], ["a"], 0.25),
        (["x"], ["a"], 0.0),
        (["a"], [], 0.0),
        ([], ["a"], None),
        ([], [], None),
    ],
    ids=["all-right", "one-of-four", "all-wrong", "empty-gold", "nothing-cited", "nothing-at-all"],
)
def test_citation_precision(cited: list[str], gold: list[str], expected: float | None) -> None:
    assert citation_precision(cited, gold) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("cited", "gold", "expected"),
    [
        (["a", "b"], ["a", "b", "c"], 2 / 3),
        (["a", "x", "y", "z"], ["a"], 1.0),
        (["x"], ["a", "b"], 0.0),
        ([], ["a", "b"], 0.0),
        (["a"], [], None),
        (["a", "a"], ["a", "b"], 0.5),
    ],
    ids=["two-of-three", "all", "none", "nothing-cited", "empty-gold", "dup-citations"],
)
def test_citation_recall(cited: list[str], gold: list[str], expected: float | None) -> None:
    assert citation_recall(cited, gold) == (pytest.approx(expected) if expected is not None else None)


def test_mean_ignores_none_and_dedupe_keeps_order() -> None:
    assert mean([1.0, None, 0.0, 0.5]) == pytest.approx(0.5)
    assert mean([None, None]) is None
    assert mean([]) is None
    assert dedupe(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


# --- per question and summary --------------------------------------------------------------


def _core(scores: Scores) -> tuple[float | None, float | None, float | None, float | None, bool, bool]:
    return (scores.recall5, scores.mrr, scores.precision, scores.recall, scores.refused, scores.answerable)


def test_score_result_for_an_answerable_question() -> None:
    item = {"question": "?", "gold": ["u1", "u2"]}
    result = {
        "answer": "Byrådet vil a [1]. Byrådet vil også b [2].",
        "retrieved": [{"id": "u9", "text": "b"}, {"id": "u1", "text": "a"}, {"id": "u1", "text": "a"}],
        "citations": [{"n": 1, "id": "u1", "text": "a"}, {"n": 2, "id": "u9", "text": "b"}],
        "refused": False,
    }
    # recall@5 = 1/2 (u2 never retrieved), MRR = 1/2 (u1 at rank 2 after de-duplication),
    # precision = 1/2 (u9 is not gold), recall = 1/2 (u2 not cited).
    assert _core(score_result(item, result)) == (0.5, 0.5, 0.5, 0.5, False, True)


def test_score_result_for_an_unanswerable_question() -> None:
    item = {"question": "NATO?", "gold": [], "answerable": False}
    result = {"answer": "Nei.", "retrieved": [{"id": "u1", "text": "a"}], "citations": [], "refused": True}
    assert _core(score_result(item, result)) == (None, None, None, None, True, False)


def test_summarise_by_hand() -> None:
    scores = [
        Scores(recall5=1.0, mrr=1.0, precision=1.0, recall=0.5, refused=False, answerable=True),
        Scores(recall5=0.5, mrr=0.25, precision=None, recall=0.0, refused=True, answerable=True),
        Scores(recall5=None, mrr=None, precision=None, recall=None, refused=True, answerable=False),
        Scores(recall5=None, mrr=None, precision=None, recall=None, refused=False, answerable=False),
    ]
    summary = summarise(scores)
    assert summary["n"] == 4
    assert summary["recall@5"] == pytest.approx(0.75)
    assert summary["mrr"] == pytest.approx(0.625)
    assert summary["citation_precision"] == pytest.approx(1.0)
    assert summary["citation_recall"] == pytest.approx(0.25)
    assert summary["unanswerable_refused"] == pytest.approx(0.5)
    assert summary["answerable_refused"] == pytest.approx(0.5)


def test_summarise_edge_cases() -> None:
    empty = summarise([])
    assert empty["n"] == 0
    for key in (
        "recall@5",
        "mrr",
        "citation_precision",
        "citation_recall",
        "unanswerable_refused",
        "answerable_refused",
    ):
        assert empty[key] is None, key
    only_answerable = summarise([Scores(1.0, 1.0, None, 1.0, refused=False, answerable=True)])
    assert only_answerable["unanswerable_refused"] is None
    assert only_answerable["answerable_refused"] == 0.0
    assert only_answerable["citation_precision"] is None


# --- thresholds ----------------------------------------------------------------------------


def test_check_thresholds_passes_when_all_are_met() -> None:
    summaries = {"all": {"recall@5": 0.8, "mrr": 0.7, "answerable_refused": 0.05}}
    thresholds = {"groups": {"all": {"min": {"recall@5": 0.8, "mrr": 0.6}, "max": {"answerable_refused": 0.05}}}}
    assert check_thresholds(summaries, thresholds) == []


def test_check_thresholds_reports_each_miss_by_group() -> None:
    summaries: dict[str, dict[str, Any]] = {
        "all": {"recall@5": 0.9, "answerable_refused": 0.0},
        "dev": {"recall@5": 0.75, "mrr": None, "answerable_refused": 0.2},
        "test/multi": {"citation_recall": 0.5},
    }
    thresholds = {
        "groups": {
            "all": {"min": {"recall@5": 0.8}},
            "dev": {"min": {"recall@5": 0.8, "mrr": 0.6, "citation_recall": 0.5}, "max": {"answerable_refused": 0.1}},
            "test/multi": {"min": {"citation_recall": 0.8}},
            "test/section": {"min": {"citation_recall": 0.8}},
        }
    }
    assert check_thresholds(summaries, thresholds) == [
        "dev recall@5 = 0.750 < 0.8",
        "dev mrr = – < 0.6",
        "dev citation_recall = – < 0.5",
        "dev answerable_refused = 0.200 > 0.1",
        "test/multi citation_recall = 0.500 < 0.8",
        "test/section: no questions measured",
    ]


def test_check_thresholds_without_thresholds() -> None:
    assert check_thresholds({"all": {"recall@5": 0.0}}, {}) == []


def test_group_summaries_by_split_and_category() -> None:
    items = [
        {"split": "dev", "category": "multi"},
        {"split": "test", "category": "multi"},
        {"split": "test", "category": "lookup"},
    ]
    scores = [
        Scores(recall5=r, mrr=None, precision=None, recall=None, refused=False, answerable=True)
        for r in (0.0, 1.0, 0.5)
    ]
    summaries = group_summaries(items, scores)
    assert {k: v["recall@5"] for k, v in summaries.items()} == {
        "all": 0.5,
        "dev": 0.0,
        "test": 0.75,
        "multi": 0.5,
        "lookup": 0.5,
        "dev/multi": 0.0,
        "test/multi": 1.0,
        "test/lookup": 0.5,
    }


def test_the_gate_exits_non_zero_when_a_floor_is_missed(fake_assistant: Assistant, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    items = [
        {
            "id": "a",
            "question": "Hva står det om kulturskolen?",
            "category": "section",
            "split": "dev",
            "answerable": True,
            "gold": [u.id for u in fake_assistant.corpus.pledges if u.subheading == "Kulturskolen"],
        },
        {
            "id": "b",
            "question": "Hva mener byrådet om NATO?",
            "category": "uncovered",
            "split": "test",
            "answerable": False,
            "gold": [],
        },
    ]
    questions.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n", encoding="utf-8")
    met = tmp_path / "met.json"
    met.write_text(
        json.dumps(
            {"groups": {"dev/section": {"min": {"citation_recall": 1.0}}, "all": {"max": {"invented_citations": 0}}}}
        ),
        encoding="utf-8",
    )
    missed = tmp_path / "missed.json"
    missed.write_text(
        json.dumps(
            {
                "groups": {
                    "dev/section": {"min": {"citation_recall": 1.0}},
                    "test/uncovered": {"min": {"unanswerable_refused": 1.01}},
                }
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "results"
    assert run_eval(fake_assistant, questions, split="all", out_dir=out, gate=True, thresholds_file=met) == 0
    assert run_eval(fake_assistant, questions, split="all", out_dir=out, gate=True, thresholds_file=missed) == 1
    with pytest.raises(AssistantError, match="--split all"):
        run_eval(fake_assistant, questions, split="dev", out_dir=out, gate=True, thresholds_file=met)


def test_calibration_refuses_the_test_split(fake_assistant: Assistant, tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="held-out"):
        calibrate(fake_assistant, tmp_path / "q.jsonl", split="test", write=False)


def test_the_refusal_threshold_refuses_at_most_the_allowed_share_of_answerable_questions() -> None:
    # 40 answerable questions scoring 1..40 and 10 unanswerable ones scoring 0.5..5: refusing
    # every unanswerable one would refuse 5 answerable ones (12.5 %); 3 % allows one.
    answerable_scores = [float(s) for s in range(1, 41)]
    unanswerable_scores = [0.5 * s for s in range(1, 11)]
    scores = answerable_scores + unanswerable_scores
    answerable = [True] * 40 + [False] * 10
    none = [False] * 50
    _cost, cut = _pick_threshold(scores, answerable, none, none)
    wrongly_refused = sum(1 for s in answerable_scores if s < cut)
    assert wrongly_refused / 40 <= MAX_ANSWERABLE_REFUSED
    assert wrongly_refused == 1
    assert sum(1 for s in unanswerable_scores if s < cut) == 3  # 0.5, 1.0, 1.5 (below 2)


def test_the_hedge_margin_hedges_at_most_the_allowed_share_of_answerable_answers() -> None:
    margins = [0.1 * k for k in range(1, 21)]  # 20 answerable answers, 0.1 .. 2.0 above the threshold
    margin = pick_hedge_margin(margins, 0.10)
    assert sum(1 for m in margins if m < margin) == 2
    assert margin == pytest.approx(0.25)
    assert pick_hedge_margin(margins, 0.04) == 0.0  # not even one answer may be hedged
    assert pick_hedge_margin([], 0.10) == 0.0
    assert pick_hedge_margin([-0.5, 0.3], 1.0) > 0.3  # refused ones (below the threshold) do not count
    assert pick_hedge_margin([0.4, 0.4, 0.4, 0.4, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4], 0.3) == pytest.approx(0.4)


def test_the_hedge_note_counts_hedged_answers_by_answerability() -> None:
    items: list[dict[str, Any]] = [
        {"gold": ["a"]},
        {"gold": ["b"]},
        {"answerable": False},
        {"answerable": False},
        {"answerable": False},
    ]
    results = [
        {"refused": False, "decision": "nearest"},
        {"refused": False, "decision": "ranked"},
        {"refused": False, "decision": "nearest"},
        {"refused": True, "decision": "refused"},
        {"refused": False, "decision": "ranked"},
    ]
    assert hedge_note(items, results) == (
        "Answers hedged as only the nearest pledges: 1 of 2 answered unanswerable questions, "
        "1 of 2 answered answerable ones."
    )


def test_pick_unknown_shift_refuses_more_without_refusing_an_answerable_question() -> None:
    # Each question's shift; the rule refuses those at or above the minimum (0 = rule off).
    shifts = [0.09, 0.07, 0.05, 0.04, 0.03, 0.01]
    answerable = [False, False, True, False, False, True]

    def outcomes(shift_min: float) -> list[bool]:
        return [0 < shift_min <= s for s in shifts]

    # 0.07 refuses both unanswerable questions above it (so does 0.06: ties go to the larger); 0.04
    # would add one more but also the answerable 0.05.
    assert pick_unknown_shift(outcomes, answerable) == pytest.approx(0.07)


def test_pick_unknown_shift_counts_questions_refused_without_the_rule() -> None:
    # An answerable question refused anyway (by the threshold) does not forbid a setting.
    def outcomes(shift_min: float) -> list[bool]:
        return [True, 0 < shift_min <= 0.08, False]

    assert pick_unknown_shift(outcomes, [True, False, True]) == pytest.approx(0.08)


def test_pick_unknown_shift_is_off_when_nothing_is_gained() -> None:
    assert pick_unknown_shift(lambda shift_min: [False, False], [True, False]) == 0.0


class _ShiftRules:
    """Stands in for the assistant: a question is (shift, hedged), refused by the calibration's rules."""

    def __init__(self) -> None:
        self.calibration = Calibration(unknown_shift_min=0.5, unknown_shift_strong=0.5)

    def with_calibration(self, calibration: Calibration) -> None:
        self.calibration = calibration

    def select(self, question: tuple[float, bool]) -> SimpleNamespace:
        shift, hedged = question
        rules = self.calibration
        refused = (hedged and 0 < rules.unknown_shift_min <= shift) or 0 < rules.unknown_shift_strong <= shift
        return SimpleNamespace(refused=refused)


def test_fit_unknown_rule_fits_the_hedged_then_the_strong_shift() -> None:
    questions = [(0.05, True), (0.03, True), (0.078, False), (0.07, False)]
    answerable = [False, True, False, True]
    fitted = fit_unknown_rule(cast(Any, _ShiftRules()), cast(Any, questions), answerable)
    # The hedged rule refuses 0.05 but not the answerable 0.03 (ties go to the larger shift); the
    # strong rule refuses 0.078 but not the answerable, well-matched 0.07.
    assert fitted.unknown_shift_min == pytest.approx(0.05)
    assert fitted.unknown_shift_strong == pytest.approx(0.075)


# --- fitting the citation selection ------------------------------------------------------


def test_with_fit_note_replaces_the_part_fitted_alone() -> None:
    first = with_fit_note("q.jsonl split=dev n=136", UNKNOWN_RULE_NOTE, "q.jsonl split=dev n=296")
    assert first == "q.jsonl split=dev n=136; unknown-word rule: q.jsonl split=dev n=296"
    both = with_fit_note(first, CITATION_NOTE, "q.jsonl split=dev n=374")
    again = with_fit_note(both, UNKNOWN_RULE_NOTE, "q.jsonl split=dev n=374")
    assert again == (
        "q.jsonl split=dev n=136; citations: q.jsonl split=dev n=374; unknown-word rule: q.jsonl split=dev n=374"
    )


def test_the_citation_objective_does_not_buy_recall_below_the_precision_target() -> None:
    assert MIN_CITATION_PRECISION == 0.9
    above = _citation_objective([0.9, 0.9], [0.5, 0.5])
    below = _citation_objective([0.89, 0.89], [1.0, 1.0])
    assert above > 0 > below


def test_fit_citations_keeps_the_refusal_rules_and_improves_on_a_bad_start(fake_assistant: Assistant) -> None:
    items: list[dict[str, Any]] = [
        {
            "question": "alle løfter om sykkel",
            "gold": ["miljo-naering-og-samferdsel/baerekraftig-verdiskaping/samferdsel/4"],
        },
        {"question": "fritt brukervalg i hjemmetjenestene", "gold": ["helse-og-eldre/innbyggernes-helsetjeneste/5"]},
        {"question": "Hva mener byrådet om NATO?", "gold": []},
    ]
    retrieved = [fake_assistant.retrieve(item["question"]) for item in items]
    # A start outside the grid that cites badly: six pledges, coverage held against them.
    start = Calibration(
        threshold=float("-inf"), cite_coverage_weight=-1.0, margin=0.2, max_citations=6, passage_penalty=0.02
    )
    original = fake_assistant.calibration

    def objective(calibration: Calibration) -> float:
        fake_assistant.with_calibration(calibration)
        cited = [dedupe(c.unit_id for c in fake_assistant.select(r).cited) for r in retrieved]
        pairs = [(ids, item["gold"]) for ids, item in zip(cited, items, strict=True) if item["gold"]]
        return _citation_objective(
            [citation_precision(ids, gold) or 0.0 for ids, gold in pairs],
            [citation_recall(ids, gold) or 0.0 for ids, gold in pairs],
        )

    try:
        fitted = fit_citations(fake_assistant, items, retrieved, start)
        assert (fitted.threshold, fitted.hedge_margin, fitted.unknown_shift_min) == (
            start.threshold,
            start.hedge_margin,
            start.unknown_shift_min,
        )
        assert objective(fitted) > objective(start)
    finally:
        fake_assistant.with_calibration(original)
