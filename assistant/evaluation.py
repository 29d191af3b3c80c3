"""Evaluation: pure metric functions, the runner, threshold calibration and the benchmark."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from assistant.contract import answer_to_json
from assistant.core import Assistant, Retrieved
from assistant.errors import AssistantError
from assistant.generation import FALLBACK_ECHO, FALLBACK_MODEL_FAILED, FALLBACK_NO_CITATIONS
from assistant.relevance import Calibration
from assistant.settings import PROJECT_ROOT
from assistant.types import Answer

THRESHOLDS_FILE = PROJECT_ROOT / "eval" / "thresholds.json"
SUBSETS_DIR = PROJECT_ROOT / "eval" / "subsets"


# --- metrics (pure) --------------------------------------------------------------------------


def recall_at_k(retrieved: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of the gold units in the top k, capped: a question with 12 gold pledges is not
    penalised for having only k slots (denominator min(|gold|, k))."""
    gold_set = set(gold)
    if not gold_set:
        return 1.0
    found = len(gold_set & set(retrieved[:k]))
    return found / min(len(gold_set), k)


def reciprocal_rank(retrieved: Sequence[str], gold: Iterable[str]) -> float:
    gold_set = set(gold)
    for rank, unit_id in enumerate(retrieved, start=1):
        if unit_id in gold_set:
            return 1.0 / rank
    return 0.0


def citation_precision(cited: Sequence[str], gold: Iterable[str], acceptable: Iterable[str] = ()) -> float | None:
    """Share of citations that point to a gold unit, or to one the item accepts as relevant
    without requiring it; None when nothing was cited."""
    if not cited:
        return None
    right = set(gold) | set(acceptable)
    return sum(1 for c in cited if c in right) / len(cited)


def citation_recall(cited: Sequence[str], gold: Iterable[str]) -> float | None:
    gold_set = set(gold)
    if not gold_set:
        return None
    return len(gold_set & set(cited)) / len(gold_set)


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


_STATEMENT_ID = re.compile(r"^(?P<passage>.+/p\d+)/s\d+$")


def as_scored(unit_id: str) -> str:
    """A commitment sentence counts as its passage: citing «…/p1/s4» or «…/p1» answers the same."""
    match = _STATEMENT_ID.match(unit_id)
    return match["passage"] if match else unit_id


def scored_ids(ids: Iterable[str]) -> list[str]:
    return dedupe(as_scored(i) for i in ids)


_MARKER = re.compile(r"\[(\d+)\]")
_THOUSANDS = re.compile(r"(?<=\d)[.\s\u00a0](?=\d{3}\b)")


def normalise_facts(text: str) -> str:
    """Case, "3%" vs "3 prosent" and "37.000" vs "37 000" vs "37000" do not count as differences."""
    text = _THOUSANDS.sub("", text.lower()).replace("%", " prosent")
    return re.sub(r"\s+", " ", text).strip()


def key_fact_coverage(answer: str, facts: Sequence[str]) -> float | None:
    if not facts:
        return None
    normalised = normalise_facts(answer)
    return sum(1 for fact in facts if normalise_facts(fact) in normalised) / len(facts)


def invalid_markers(answer: str, citation_numbers: Iterable[int]) -> int:
    """[n] markers in the answer that point to no citation (an invented source)."""
    valid = set(citation_numbers)
    return sum(1 for n in _MARKER.findall(answer) if int(n) not in valid)


def invented_citations(citation_texts: Iterable[str], corpus_texts: frozenset[str]) -> int:
    """Citations whose text is not, verbatim, a pledge or passage of the platform."""
    return sum(1 for text in citation_texts if text not in corpus_texts)


@dataclass(frozen=True)
class Scores:
    """Per-question scores; None where a metric does not apply."""

    recall5: float | None
    mrr: float | None
    precision: float | None
    recall: float | None
    refused: bool
    answerable: bool
    key_facts: float | None = None
    declined: bool = False
    premise_corrected: float | None = None
    invalid_markers: int = 0
    invented_citations: int = 0
    #: Whether the answer's scope kind is the one the item expects (None when it names none).
    scope_right: bool | None = None


def score_result(item: dict[str, Any], result: dict[str, Any], corpus_texts: frozenset[str] | None = None) -> Scores:
    gold = scored_ids(item.get("gold", []))
    acceptable = scored_ids(item.get("acceptable", []))
    answerable = bool(item.get("answerable", bool(gold)))
    retrieved = scored_ids(r["id"] for r in result.get("retrieved", []))
    citations = result.get("citations", [])
    cited = scored_ids(c["id"] for c in citations)
    expected_scope = item.get("expected_scope")
    answer = result.get("answer") or ""
    bad_markers = invalid_markers(answer, (c["n"] for c in citations))
    has_gold = answerable and bool(gold)
    # A marker that points nowhere is a wrong citation.
    counted = cited + [f"<invalid marker {i}>" for i in range(bad_markers)]
    return Scores(
        recall5=recall_at_k(retrieved, gold, 5) if has_gold else None,
        mrr=reciprocal_rank(retrieved, gold) if has_gold else None,
        precision=citation_precision(counted, gold, acceptable) if has_gold else None,
        recall=citation_recall(cited, gold) if has_gold else None,
        refused=bool(result.get("refused")),
        # «Erklæringen oppgir ikke noe tall for dette. Det nærmeste den sier: …» declines what was
        # asked: right for a question the platform cannot answer. Asked what the platform does say,
        # the same answer is scored by its citations and key facts.
        declined=bool(result.get("refused")) or result.get("decision") == "not_given",
        answerable=answerable,
        key_facts=key_fact_coverage(answer, item.get("key_facts", [])) if answerable else None,
        premise_corrected=(1.0 if set(gold) & set(cited) else 0.0) if item.get("category") == "false_premise" else None,
        invalid_markers=bad_markers,
        invented_citations=invented_citations((c["text"] for c in citations), corpus_texts)
        if corpus_texts is not None
        else 0,
        scope_right=None if not expected_scope else (result.get("scope") or {}).get("kind") == expected_scope,
    )


def summarise(scores: Sequence[Scores]) -> dict[str, float | int | None]:
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    return {
        "n": len(scores),
        "recall@5": mean(s.recall5 for s in scores),
        "mrr": mean(s.mrr for s in scores),
        "citation_precision": mean(s.precision for s in scores),
        "citation_recall": mean(s.recall for s in scores),
        "unanswerable_refused": mean(1.0 if s.refused or s.declined else 0.0 for s in unanswerable)
        if unanswerable
        else None,
        "answerable_refused": mean(1.0 if s.refused else 0.0 for s in answerable) if answerable else None,
        "key_fact_coverage": mean(s.key_facts for s in scores),
        "premise_corrected": mean(s.premise_corrected for s in scores),
        "invalid_markers": sum(s.invalid_markers for s in scores),
        "invented_citations": sum(s.invented_citations for s in scores),
        "scope_accuracy": mean(None if s.scope_right is None else float(s.scope_right) for s in scores),
    }


# --- runner ----------------------------------------------------------------------------------


def load_questions(path: Path, split: str = "all") -> list[dict[str, Any]]:
    if not path.exists():
        raise AssistantError(f"Fant ikke spørsmålsfilen {path}.")
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [i for i in items if split == "all" or i.get("split") == split]


def answer_all(assistant: Assistant, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [answer_to_json(assistant.ask(item["question"]), item.get("id")) for item in items]


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


REPORT_KEYS = (
    "n",
    "recall@5",
    "mrr",
    "citation_precision",
    "citation_recall",
    "key_fact_coverage",
    "premise_corrected",
    "unanswerable_refused",
    "answerable_refused",
    "invalid_markers",
    "invented_citations",
    "scope_accuracy",
)


def report_markdown(rows: Sequence[tuple[str, dict[str, Any]]], title: str, notes: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", *notes, ""]
    lines += ["| | " + " | ".join(REPORT_KEYS) + " |", "|---" * (len(REPORT_KEYS) + 1) + "|"]
    for name, summary in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(summary.get(k)) for k in REPORT_KEYS) + " |")
    return "\n".join(lines) + "\n"


def category_quality(summary: dict[str, Any]) -> dict[str, float]:
    """The per-category figures drawn in the chart (all "higher is better", 0–1)."""
    figures = {
        "recall@5": summary.get("recall@5"),
        "citation precision": summary.get("citation_precision"),
        "citation recall": summary.get("citation_recall"),
        "key facts": summary.get("key_fact_coverage"),
        "correct refusal decision": None,
    }
    refused_right = summary.get("unanswerable_refused")
    answered_right = summary.get("answerable_refused")
    decisions = [v for v in (refused_right, None if answered_right is None else 1 - answered_right) if v is not None]
    figures["correct refusal decision"] = sum(decisions) / len(decisions) if decisions else None
    return {k: float(v) for k, v in figures.items() if v is not None}


def write_chart(categories: dict[str, dict[str, Any]], path: Path) -> bool:
    """Grouped bars per category; the weak category stands out at a glance. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = sorted(categories)
    figures = [category_quality(categories[n]) for n in names]
    series = ["recall@5", "citation precision", "citation recall", "key facts", "correct refusal decision"]
    figure, axes = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(series)
    for offset, label in enumerate(series):
        xs = [i + offset * width - 0.4 + width / 2 for i in range(len(names))]
        axes.bar(xs, [f.get(label, 0.0) for f in figures], width, label=label)
    axes.set_xticks(range(len(names)), names, rotation=15)
    axes.set_ylim(0, 1.05)
    axes.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    axes.set_ylabel("score (higher is better)")
    axes.set_title("Leangen-assistenten: evaluation per category")
    axes.legend(ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.32))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def group_summaries(items: Sequence[dict[str, Any]], scores: Sequence[Scores]) -> dict[str, dict[str, Any]]:
    """Summaries for all questions ("all"), each split ("dev"), each category ("multi") and each
    category within a split ("dev/multi"): what the gate's floors are set on."""
    groups: dict[str, list[Scores]] = defaultdict(list)
    for item, score in zip(items, scores, strict=True):
        split, category = item.get("split", "?"), item.get("category", "uncategorised")
        for name in ("all", split, category, f"{split}/{category}"):
            groups[name].append(score)
    return {name: summarise(group) for name, group in groups.items()}


def run_eval(
    assistant: Assistant,
    questions: Path,
    *,
    split: str,
    out_dir: Path,
    gate: bool,
    thresholds_file: Path = THRESHOLDS_FILE,
    subset: str | None = None,
) -> int:
    if gate and (split != "all" or subset is not None):
        raise AssistantError("The gate checks every split and category: run it with --split all and no --subset.")
    items = load_questions(questions, split)
    if subset is not None:
        items = select_subset(items, load_subset(subset))
    # The guard's counts are on the Answer objects, not in the `ask --jsonl` results.
    answers: list[Answer] = []

    def listener(_question_id: str, answer: Answer) -> None:
        answers.append(answer)

    assistant.answer_listeners.append(listener)
    started = time.perf_counter()
    assistant.warm_up()
    results = answer_all(assistant, items)
    corpus_texts = frozenset(u.text for u in assistant.corpus.citable)
    scores = [score_result(item, result, corpus_texts) for item, result in zip(items, results, strict=True)]
    summaries = group_summaries(items, scores)
    categories = sorted({str(item.get("category", "uncategorised")) for item in items})
    splits = sorted({str(item.get("split", "?")) for item in items})
    rows = [(name, summaries[name]) for name in categories]
    rows += [(f"*split {name}*", summaries[name]) for name in splits]
    rows.append(("**overall**", summaries["all"]))

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"{assistant.settings.backend}-{subset_name(subset) if subset else split}"
    with (out_dir / f"results-{suffix}.jsonl").open("w", encoding="utf-8") as handle:
        for item, result, score in zip(items, results, scores, strict=True):
            handle.write(
                json.dumps({"item": item, "result": result, "scores": score.__dict__}, ensure_ascii=False) + "\n"
            )
    chart = out_dir / f"report-{suffix}.png"
    notes = [
        f"{len(items)} questions from `{questions.name}`, {time.perf_counter() - started:.1f} s.",
        hedge_note(items, results),
    ]
    if write_chart({name: summaries[name] for name in categories}, chart):
        notes.append(f"![per-category scores]({chart.name})")
    assistant.answer_listeners.remove(listener)
    if assistant.generative:
        generation = generation_summary(results, answers, assistant.settings.backend)
        notes.append(generation_markdown(generation))
        (out_dir / f"generation-{suffix}.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")
    scope = f"subset {subset_name(subset)}" if subset else f"split {split}"
    report = report_markdown(rows, f"Evaluation: backend {assistant.settings.backend}, {scope}", notes)
    if len(splits) > 1:
        per_split = [
            (f"{s} / {c}", summaries[f"{s}/{c}"]) for s in splits for c in categories if f"{s}/{c}" in summaries
        ]
        report += "\n" + report_markdown(per_split, "Per split and category")
    (out_dir / f"report-{suffix}.md").write_text(report, encoding="utf-8")
    print(report)
    print(f"Per-question results and report in {out_dir}", file=sys.stderr)
    if gate:
        failures = check_thresholds(summaries, json.loads(thresholds_file.read_text(encoding="utf-8")))
        for failure in failures:
            print(f"THRESHOLD MISSED: {failure}", file=sys.stderr)
        if not failures:
            print(f"All thresholds in {thresholds_file.name} met.", file=sys.stderr)
        return 1 if failures else 0
    return 0


# --- subsets and generation figures --------------------------------------------------------------


def stratified_subset(items: Sequence[dict[str, Any]], per_category: int, salt: str) -> list[str]:
    """A fixed subset: in each category, the `per_category` items whose sha256("<salt>:<id>") is
    smallest. Deterministic (no random generator, no Python version in it) and stable: adding
    questions to the set changes a category's choice only if a new id hashes lower. Ids in file order."""
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_category[str(item.get("category", "uncategorised"))].append(item)
    chosen: set[str] = set()
    for group in by_category.values():
        ranked = sorted(group, key=lambda i: hashlib.sha256(f"{salt}:{i['id']}".encode()).hexdigest())
        chosen.update(str(i["id"]) for i in ranked[:per_category])
    return [str(i["id"]) for i in items if str(i["id"]) in chosen]


def subset_name(spec: str) -> str:
    return Path(spec).stem


def load_subset(spec: str) -> list[str]:
    """Question ids from a subset file: a path, or a name under eval/subsets/ (`local-40`).
    One id per line; `#` starts a comment."""
    path = Path(spec)
    if not path.is_file():
        path = SUBSETS_DIR / f"{spec}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUBSETS_DIR.glob("*.txt"))) or "none"
        raise AssistantError(f"Fant ikke delmengden «{spec}» / no subset '{spec}' (known subsets: {known}).")
    ids = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [i for i in ids if i]


def select_subset(items: Sequence[dict[str, Any]], ids: Sequence[str]) -> list[dict[str, Any]]:
    by_id = {str(item["id"]): item for item in items}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise AssistantError(
            f"{len(missing)} id(s) of the subset are not among the questions of this split: {', '.join(missing[:5])}."
        )
    return [by_id[i] for i in ids]


def fallback_kind(note: str | None) -> str | None:
    """Why a generative backend's answer was replaced by the extractive one (None: it was not)."""
    if not note:
        return None
    if note == FALLBACK_NO_CITATIONS:
        return "no valid citation"
    if note == FALLBACK_ECHO:
        return "echoed instructions"
    prefix = FALLBACK_MODEL_FAILED.split("{", 1)[0]
    if note.startswith(prefix):
        return "timeout" if "Timeout" in note else "model error"
    return "other"


def generation_summary(results: Sequence[dict[str, Any]], answers: Sequence[Answer], backend: str) -> dict[str, Any]:
    """Fallback rate and reasons, what the citation guard removed, and the model's timings."""
    kinds = [fallback_kind(r.get("note")) for r in results if not r.get("error")]
    answered = [r for r in results if not r.get("error")]
    by_model = [r for r in answered if r.get("backend") == backend]
    guard = [
        {
            "removed_markers": a.removed_citations,
            "dropped_sentences": len(a.dropped_sentences),
            "uncited_sentences": len(a.uncited_sentences),
            "unsupported_sentences": len(a.unsupported_sentences),
            "repointed_citations": a.repointed_citations,
        }
        for a in answers
    ]
    first = [r["timings_ms"]["first_token"] for r in answered if "first_token" in r.get("timings_ms", {})]
    total = [r["timings_ms"]["total"] for r in answered if "total" in r.get("timings_ms", {})]
    reasons: dict[str, int] = defaultdict(int)
    for kind in kinds:
        if kind is not None:
            reasons[kind] += 1
    return {
        "n": len(answered),
        "answered_by_model": len(by_model),
        "model_refusals": sum(1 for r in by_model if r.get("refused")),
        "fallbacks": sum(reasons.values()),
        "fallback_rate": sum(reasons.values()) / len(answered) if answered else None,
        "fallback_reasons": dict(sorted(reasons.items())),
        "removed_markers": sum(g.get("removed_markers", 0) for g in guard),
        "dropped_sentences": sum(g.get("dropped_sentences", 0) for g in guard),
        "uncited_sentences": sum(g.get("uncited_sentences", 0) for g in guard),
        "unsupported_sentences": sum(g.get("unsupported_sentences", 0) for g in guard),
        "repointed_citations": sum(g.get("repointed_citations", 0) for g in guard),
        "answers_touched_by_guard": sum(1 for g in guard if any(g.values())),
        "first_token_ms_p50": _percentile(first, 0.5) if first else None,
        "first_token_ms_p95": _percentile(first, 0.95) if first else None,
        "total_ms_p50": _percentile(total, 0.5) if total else None,
        "total_ms_p95": _percentile(total, 0.95) if total else None,
        "total_ms_mean": statistics.fmean(total) if total else None,
    }


def generation_markdown(summary: dict[str, Any]) -> str:
    def seconds(key: str) -> str:
        value = summary.get(key)
        return "–" if value is None else f"{value / 1000:.1f} s"

    reasons = ", ".join(f"{k} {v}" for k, v in summary["fallback_reasons"].items()) or "none"
    rate = summary["fallback_rate"]
    return "\n".join(
        [
            "| generation | value |",
            "|---|---|",
            f"| answered by the model (of which refusals) | {summary['answered_by_model']} of {summary['n']} "
            f"({summary['model_refusals']}) |",
            f"| extractive fallback | {summary['fallbacks']} ({'–' if rate is None else f'{rate:.0%}'}): {reasons} |",
            f"| guard: markers removed / claims dropped / uncited sentences removed | {summary['removed_markers']} / "
            f"{summary['dropped_sentences']} / {summary['uncited_sentences']} "
            f"(in {summary['answers_touched_by_guard']} answers) |",
            f"| support check: unsupported claims removed / sentences re-pointed | "
            f"{summary['unsupported_sentences']} / {summary['repointed_citations']} |",
            f"| time to first token, p50 / p95 (from the model call) | {seconds('first_token_ms_p50')} / "
            f"{seconds('first_token_ms_p95')} |",
            f"| total per answer, p50 / p95 / mean | {seconds('total_ms_p50')} / {seconds('total_ms_p95')} / "
            f"{seconds('total_ms_mean')} |",
        ]
    )


def hedge_note(items: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> str:
    """How many answers opened with the hedge (decision `nearest`), among the answered
    unanswerable questions and among the answered answerable ones."""
    counts = {True: [0, 0], False: [0, 0]}
    for item, result in zip(items, results, strict=True):
        if result.get("refused") or result.get("error"):
            continue
        count = counts[bool(item.get("answerable", bool(item.get("gold"))))]
        count[1] += 1
        count[0] += result.get("decision") == "nearest"
    (hedged_a, answered_a), (hedged_u, answered_u) = counts[True], counts[False]
    return (
        f"Answers hedged as only the nearest pledges: {hedged_u} of {answered_u} answered unanswerable "
        f"questions, {hedged_a} of {answered_a} answered answerable ones."
    )


def check_thresholds(summaries: dict[str, dict[str, Any]], thresholds: dict[str, Any]) -> list[str]:
    """Every floor and ceiling missed, per group ("all", "dev", "test", "dev/multi" …): a loss in
    one place is not averaged away by gains elsewhere. A group the thresholds name but the
    evaluation did not measure is a failure too."""
    failures = []
    for group, limits in thresholds.get("groups", {}).items():
        measured = summaries.get(group)
        if measured is None:
            failures.append(f"{group}: no questions measured")
            continue
        for key, minimum in limits.get("min", {}).items():
            if measured.get(key) is None or measured[key] < minimum:
                failures.append(f"{group} {key} = {_fmt(measured.get(key))} < {minimum}")
        for key, maximum in limits.get("max", {}).items():
            if measured.get(key) is None or measured[key] > maximum:
                failures.append(f"{group} {key} = {_fmt(measured.get(key))} > {maximum}")
    return failures


# --- calibration -----------------------------------------------------------------------------


#: The issue's target: at most 3 % of answerable questions refused. Refusing a question the
#: platform answers hides a real pledge, so the threshold is fitted under this constraint.
MAX_ANSWERABLE_REFUSED = 0.03
#: At most this share of the answerable questions answered from ranked pledges opens with
#: "Erklæringen svarer kanskje ikke direkte på dette": the hedge is for the uncovered questions
#: that pass the threshold, and a right answer should rarely carry it.
MAX_ANSWERABLE_HEDGED = 0.10


def pick_hedge_margin(margins: Sequence[float], share: float = MAX_ANSWERABLE_HEDGED) -> float:
    """The margin above the refusal threshold under which answers are hedged, so that at most
    `share` of the answerable answers (`margins`: their answerability minus the threshold) are."""
    values = sorted(m for m in margins if m >= 0.0)
    allowed = int(share * len(values))
    if allowed == 0:
        return 0.0
    if allowed >= len(values):
        return values[-1] + 1.0
    return (values[allowed - 1] + values[allowed]) / 2


def _pick_threshold(
    scores: Sequence[float], answerable: Sequence[bool], forced: Sequence[bool], refused_anyway: Sequence[bool]
) -> tuple[float, float]:
    """Threshold that refuses the most unanswerable questions while refusing at most
    MAX_ANSWERABLE_REFUSED of the answerable ones; returns (cost, threshold). `forced` marks
    questions answered regardless (a named section), `refused_anyway` those refused whatever the
    threshold (an unknown topic)."""
    values = sorted(set(scores))
    cuts = [values[0] - 1.0, *((a + b) / 2 for a, b in pairwise(values)), values[-1] + 1.0]
    n_answerable = max(1, sum(answerable))
    n_unanswerable = max(1, len(answerable) - sum(answerable))
    best: tuple[float, float] | None = None
    for cut in cuts:
        refused = [(s < cut or r) and not f for s, f, r in zip(scores, forced, refused_anyway, strict=True)]
        wrongly_refused = sum(r for r, a in zip(refused, answerable, strict=True) if a) / n_answerable
        wrongly_answered = sum(not r for r, a in zip(refused, answerable, strict=True) if not a) / n_unanswerable
        cost = wrongly_answered + (10.0 if wrongly_refused > MAX_ANSWERABLE_REFUSED else 0.0) + wrongly_refused
        if best is None or cost < best[0] - 1e-9:
            best = (cost, cut)
    assert best is not None
    return best


#: Issue 3's target: a citation fit may not buy recall with precision below it.
MIN_CITATION_PRECISION = 0.90
#: Candidate weights of the closest-expansion cosine (cosines differ by hundredths, z by units).
VIEW_WEIGHTS = (0.0, 10.0, 20.0, 30.0, 45.0, 60.0)


UNKNOWN_RULE_NOTE = "unknown-word rule: "
CITATION_NOTE = "citations: "


def with_fit_note(fitted_on: str, label: str, fitted: str) -> str:
    """The calibration's provenance with the part fitted alone (`label`) replaced:
    "questions.jsonl split=dev n=136; unknown-word rule: questions.jsonl split=dev n=374"."""
    kept = [part for part in fitted_on.split("; ") if not part.startswith(label)]
    return "; ".join([*kept, f"{label}{fitted}"])


#: Candidate minimum shifts of the unknown-word refusal rule.
UNKNOWN_SHIFT_MINS = tuple(round(0.02 + 0.005 * k, 3) for k in range(13))


def pick_unknown_shift(outcomes: Callable[[float], Sequence[bool]], answerable: Sequence[bool]) -> float:
    """The minimum shift of the unknown-word rule that refuses the most unanswerable questions
    without refusing a single answerable question more than the rule switched off (0) does; ties
    go to the larger shift, the more cautious rule. 0 when no setting refuses more.

    `outcomes(shift_min)` gives each question's refused flag under that setting.
    """

    def counts(refused: Sequence[bool]) -> tuple[int, int]:
        pairs = list(zip(refused, answerable, strict=True))
        return sum(r for r, a in pairs if not a), sum(r for r, a in pairs if a)

    best_unanswerable, base_answerable = counts(outcomes(0.0))
    best = 0.0
    for shift_min in sorted(UNKNOWN_SHIFT_MINS, reverse=True):
        refused_unanswerable, refused_answerable = counts(outcomes(shift_min))
        if refused_answerable <= base_answerable and refused_unanswerable > best_unanswerable:
            best, best_unanswerable = shift_min, refused_unanswerable
    return best


def fit_unknown_rule(assistant: Assistant, retrieved: Sequence[Retrieved], answerable: Sequence[bool]) -> Calibration:
    """The assistant's calibration with the unknown-word refusal rules fitted on these questions:
    first the shift that refuses a hedged answer, then, with that fixed, the larger shift that
    refuses at any answerability; each refuses no answerable question more than without it."""
    base = replace(assistant.calibration, unknown_shift_min=0.0, unknown_shift_strong=0.0)

    def refusals(calibration: Calibration) -> list[bool]:
        assistant.with_calibration(calibration)
        return [assistant.select(r).refused for r in retrieved]

    hedged = replace(
        base,
        unknown_shift_min=pick_unknown_shift(lambda s: refusals(replace(base, unknown_shift_min=s)), answerable),
    )
    fitted = replace(
        hedged,
        unknown_shift_strong=pick_unknown_shift(
            lambda s: refusals(replace(hedged, unknown_shift_strong=s)), answerable
        ),
    )
    assistant.with_calibration(fitted)
    return fitted


def _citation_objective(precisions: Sequence[float], recalls: Sequence[float]) -> float:
    """F1 of citations, among settings that keep precision at or above the floor: a wrong
    citation misleads, so precision is a constraint, and within it more gold pledges is better."""
    p, r = statistics.fmean(precisions), statistics.fmean(recalls)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return f1 if p >= MIN_CITATION_PRECISION else f1 - 1.0


def fit_citations(
    assistant: Assistant, items: Sequence[dict[str, Any]], retrieved: Sequence[Retrieved], base: Calibration
) -> Calibration:
    """`base` with the citation selection (coverage weight, margin, how many, passage penalty)
    that gives the best citation F1 on the answerable questions, precision kept at or above
    MIN_CITATION_PRECISION."""
    chosen, best_f = base, -1.0
    for cite_weight in (0.0, 0.02, 0.05, 0.1, 0.15):
        for margin in [m / 200 for m in range(0, 11)]:
            for max_citations in (2, 3, 4, 5, 6):
                for penalty in (0.0, 0.02, 0.05):
                    candidate = replace(
                        base,
                        cite_coverage_weight=cite_weight,
                        margin=margin,
                        max_citations=max_citations,
                        passage_penalty=penalty,
                    )
                    assistant.with_calibration(candidate)
                    precisions, recalls = [], []
                    for item, r in zip(items, retrieved, strict=True):
                        if not item.get("gold"):
                            continue
                        cited = scored_ids(c.unit_id for c in assistant.select(r).cited)
                        gold = scored_ids(item["gold"])
                        precisions.append(
                            citation_precision(cited, gold, scored_ids(item.get("acceptable", []))) or 0.0
                        )
                        recalls.append(citation_recall(cited, gold) or 0.0)
                    score = _citation_objective(precisions, recalls)
                    if score > best_f + 1e-9:
                        best_f, chosen = score, candidate
    assistant.with_calibration(chosen)
    return chosen


def calibrate(assistant: Assistant, questions: Path, *, split: str, write: bool, only: str | None = None) -> int:
    """Fit the answerability threshold, the unknown-word rule, then the citation selection, on one
    split (dev). `only` ("unknown-words" or "citations") fits that part alone and keeps the rest of
    the current calibration."""
    if split != "dev":
        raise AssistantError(
            f"Calibration fits on the dev split only; the {split} split holds the held-out test questions, "
            "on which nothing is tuned. Run `calibrate` without --split (or with --split dev)."
        )
    items = load_questions(questions, split)
    assistant.warm_up()
    retrieved = [assistant.retrieve(item["question"]) for item in items]
    answerable = [bool(item.get("answerable", bool(item.get("gold")))) for item in items]
    fitted_on = f"{questions.name} split={split} n={len(items)}"
    if only == "citations":
        current = assistant.calibration
        chosen = fit_citations(assistant, items, retrieved, current)
        return _finish_calibration(
            assistant, replace(chosen, fitted_on=with_fit_note(current.fitted_on, CITATION_NOTE, fitted_on)), write
        )
    if only == "unknown-words":
        current = assistant.calibration
        rule = fit_unknown_rule(assistant, retrieved, answerable)
        chosen = replace(rule, fitted_on=with_fit_note(current.fitted_on, UNKNOWN_RULE_NOTE, fitted_on))
        return _finish_calibration(assistant, chosen, write)
    base = replace(assistant.calibration, unknown_shift_min=0.0, unknown_shift_strong=0.0)
    best: tuple[float, float, float, float, float] | None = None
    grid = itertools.product([w / 4 for w in range(0, 17)], [k / 2 for k in range(0, 9)], VIEW_WEIGHTS)
    for weight, known_weight, view_weight in grid:
        probe = replace(
            base,
            answer_coverage_weight=weight,
            answer_known_weight=known_weight,
            answer_view_weight=view_weight,
            threshold=float("-inf"),
        )
        assistant.with_calibration(probe)
        selections = [assistant.select(r) for r in retrieved]
        cost, cut = _pick_threshold(
            [s.answerability for s in selections],
            answerable,
            [s.mode == "section" for s in selections],
            [s.refused for s in selections],
        )
        if best is None or cost < best[0] - 1e-9:
            best = (cost, weight, known_weight, view_weight, cut)
    assert best is not None
    assistant.with_calibration(
        replace(
            base,
            answer_coverage_weight=best[1],
            answer_known_weight=best[2],
            answer_view_weight=best[3],
            threshold=round(best[4], 4),
        )
    )
    # The hedge band first: the unknown-word rule acts inside it.
    margins = [
        selection.answerability - assistant.calibration.threshold
        for selection, is_answerable in zip((assistant.select(r) for r in retrieved), answerable, strict=True)
        if is_answerable and selection.mode in ("ranked", "nearest")
    ]
    assistant.with_calibration(replace(assistant.calibration, hedge_margin=round(pick_hedge_margin(margins), 4)))
    fitted = fit_unknown_rule(assistant, retrieved, answerable)
    chosen = fit_citations(assistant, items, retrieved, fitted)
    chosen = replace(chosen, fitted_on=fitted_on, embedding_model=assistant.settings.embedding_model)
    return _finish_calibration(assistant, chosen, write)


def _finish_calibration(assistant: Assistant, chosen: Calibration, write: bool) -> int:
    assistant.with_calibration(chosen)
    print(json.dumps(chosen.__dict__, indent=2, ensure_ascii=False))
    if write:
        chosen.save()
        print("Wrote assistant/calibration.json", file=sys.stderr)
    return 0


# --- benchmark -------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[position]


def _chain_overhead_ms(assistant: Assistant, items: Sequence[dict[str, Any]]) -> list[float]:
    """Time of the generative chain minus the model's own time, with an instant scripted model."""
    from assistant.fakes import ScriptedChatModel

    model = ScriptedChatModel(replies=["Byrådet vil dette [1]."] * len(items))
    generative = assistant.derive(backend="openai", chat_model=model)
    overhead = []
    for item in items:
        answer = generative.ask(item["question"])
        overhead.append(answer.timings_ms["total"] - answer.timings_ms.get("model", 0.0))
    return overhead


def bench(assistant: Assistant, questions: Path, *, out_dir: Path, rebuild: bool) -> int:
    rows: list[tuple[str, str]] = []
    if rebuild:
        with tempfile.TemporaryDirectory() as scratch:
            env = {
                **os.environ,
                "ASSISTANT_INDEX_DIR": str(Path(scratch) / "index"),
                "ASSISTANT_MODELS_DIR": str(Path(scratch) / "models"),
            }
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "assistant", "index"], env=env, check=True, capture_output=True)
            rows.append(
                ("index build from scratch (model preparation included)", f"{time.perf_counter() - started:.1f} s")
            )
            child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append(("peak memory, index build", f"{child_peak:.0f} MB"))
    items = load_questions(questions, "all")
    started = time.perf_counter()
    assistant.warm_up()
    rows.append(("load model + index (warm-up)", f"{time.perf_counter() - started:.1f} s"))
    retrieve_ms, total_ms = [], []
    for item in items:
        answer = assistant.ask(item["question"])
        retrieve_ms.append(answer.timings_ms["retrieve"])
        total_ms.append(answer.timings_ms["total"])
    overhead = _chain_overhead_ms(assistant, items)
    rows += [
        ("questions", str(len(items))),
        (
            "generative chain overhead around the model, p50 / p95 (scripted model)",
            f"{_percentile(overhead, 0.5):.1f} / {_percentile(overhead, 0.95):.1f} ms",
        ),
        ("retrieval p50 / p95", f"{_percentile(retrieve_ms, 0.5):.1f} / {_percentile(retrieve_ms, 0.95):.1f} ms"),
        ("whole answer p50 / p95", f"{_percentile(total_ms, 0.5):.1f} / {_percentile(total_ms, 0.95):.1f} ms"),
        ("peak memory, answering process", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"),
    ]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(f"# Benchmark ({os.cpu_count()} cores)\n\n{table}", encoding="utf-8")
    print(table)
    return 0
