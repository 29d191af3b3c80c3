"""The citation guard: what a language model wrote is checked against the sources it was given.

Pure functions. Markers are parsed (`[2]`, `[1, 3]`, `[1][3]`, `[1-3]`); a number outside the
given sources is removed and counted; sentences without any citation are flagged; the surviving
sources are renumbered in order of first appearance, so `[n]` in the text and the n-th citation
always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER_GROUP = re.compile(r"\[\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*\]")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
MAX_RANGE = 20


@dataclass(frozen=True)
class GuardResult:
    text: str
    sources: tuple[int, ...]  # 1-based numbers of the given sources, in the order of the new [1], [2], …
    removed: int  # markers that pointed outside the given sources
    uncited_sentences: tuple[str, ...]
    dropped_sentences: tuple[str, ...] = ()  # claims whose every marker pointed outside the sources

    @property
    def has_citations(self) -> bool:
        return bool(self.sources)


def _numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group.strip()):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            low, high = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            if 0 < high - low <= MAX_RANGE:
                numbers.extend(range(low, high + 1))
                continue
            numbers.extend([low, high])
        elif part:
            numbers.append(int(part))
    return numbers


def _valid(numbers: list[int], n_sources: int) -> list[int]:
    return [n for n in numbers if 1 <= n <= n_sources]


def guard(text: str, n_sources: int) -> GuardResult:
    """Check and renumber the citations of a generated answer that was given `n_sources` sources.

    A sentence whose markers all point outside the sources is a claim attributed to a source that
    does not exist: it is dropped, not shown uncited.
    """
    kept_parts: list[str] = []
    dropped: list[str] = []
    removed = 0
    # Sentences with their trailing whitespace, so kept text keeps its line breaks.
    for part in re.findall(r"[^.!?\n]*(?:[.!?]+(?:\s*\[[^\]]*\])*|\n|$)\s*", text):
        if not part:
            continue
        groups = [_numbers(g) for g in _MARKER_GROUP.findall(part)]
        numbers = [n for group in groups for n in group]
        valid = _valid(numbers, n_sources)
        removed += len(numbers) - len(valid)
        if numbers and not valid:
            dropped.append(part.strip())
        else:
            kept_parts.append(part)
    order: dict[int, int] = {}

    def renumber(match: re.Match[str]) -> str:
        kept: list[int] = []
        for number in _valid(_numbers(match.group(1)), n_sources):
            new = order.setdefault(number, len(order) + 1)
            if new not in kept:
                kept.append(new)
        return "".join(f"[{n}]" for n in kept)

    cleaned = _MARKER_GROUP.sub(renumber, "".join(kept_parts))
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    uncited = tuple(
        sentence.strip()
        for sentence in _SENTENCE.findall(cleaned)
        if len(sentence.strip()) > 25 and not re.search(r"\[\d+\]", sentence)
    )
    return GuardResult(cleaned, tuple(order), removed, uncited, tuple(dropped))
