"""`python -m assistant.leakage_report`: the leakage findings and the non-platform-word share.

The I/O edge of `assistant.leakage`: reads the evaluation questions, the search expansions, the
theme index and the platform, and prints what the pure check finds. Exits 1 when it finds a leak.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.corpus import EXPANSIONS_DIR, THEMES_DIR, load_corpus
from assistant.leakage import (
    EvalQuestion,
    Finding,
    Platform,
    SearchAid,
    ShareRow,
    find_leaks,
    non_platform_word_share,
    parse_expansions,
    parse_questions,
    parse_theme_names,
)
from assistant.settings import PROJECT_ROOT

EVAL_QUESTIONS = PROJECT_ROOT / "eval" / "questions.jsonl"
CORPUS_DIR = PROJECT_ROOT / "corpus"


@dataclass(frozen=True)
class Sources:
    questions: list[EvalQuestion]
    aids: list[SearchAid]
    platform: Platform


def load_sources(corpus_dir: Path = CORPUS_DIR, questions_path: Path = EVAL_QUESTIONS) -> Sources:
    """The questions, every expansion query and term, every theme name, and the platform."""
    corpus = load_corpus(corpus_dir)
    aids: list[SearchAid] = []
    for path in sorted((corpus_dir / EXPANSIONS_DIR).glob("*.jsonl")):
        aids += parse_expansions(str(path.relative_to(corpus_dir.parent)), path.read_text(encoding="utf-8"))
    for path in sorted((corpus_dir / THEMES_DIR).glob("*.jsonl")):
        aids += parse_theme_names(str(path.relative_to(corpus_dir.parent)), path.read_text(encoding="utf-8"))
    return Sources(
        questions=parse_questions(questions_path.read_text(encoding="utf-8")),
        aids=aids,
        platform=Platform(corpus.units, corpus.statements),
    )


def format_findings(findings: Sequence[Finding]) -> str:
    counts = Counter(f.kind for f in findings)
    summary = ", ".join(f"{counts[kind]} {kind}" for kind in sorted(counts)) or "none"
    lines = [f"{len(findings)} leak finding{'' if len(findings) == 1 else 's'} ({summary})."]
    lines += [f"- {finding}" for finding in findings]
    if findings:
        lines.append(
            "Reword or drop the expansion query or term (or the theme name) in your own words, faithful to "
            "the unit; never edit the question."
        )
    return "\n".join(lines)


def format_shares(rows: Sequence[ShareRow]) -> str:
    lines = [
        "Share of the questions' non-platform words that their gold units' expansions use:",
        f"{'split':<6} {'category':<14} {'questions':>9} {'words':>6} {'in exp.':>7} {'share':>6}",
    ]
    lines += [
        f"{r.split:<6} {r.category:<14} {r.questions:>9} {r.non_platform_words:>6} {r.in_expansions:>7} {r.share:>6.0%}"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.leakage_report", description=__doc__)
    parser.add_argument("--questions", type=Path, default=EVAL_QUESTIONS)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    args = parser.parse_args(argv)
    sources = load_sources(args.corpus, args.questions)
    findings = find_leaks(sources.questions, sources.aids, sources.platform)
    print(format_findings(findings))
    print()
    print(format_shares(non_platform_word_share(sources.questions, sources.aids, sources.platform)))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
