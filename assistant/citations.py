"""The citation guard: what a language model wrote is checked against the sources it was given.

Pure functions. Markers are parsed (`[2]`, `[1, 3]`, `[1][3]`, `[1-3]`); a number outside the
given sources is removed and counted. Every claim must be backed by a source, so a sentence whose
markers all point outside the sources (a claim attributed to a source that does not exist) is
dropped, and so is a sentence with no marker at all (flagged in `uncited_sentences`); short
connective lines ("Byrådet vil blant annet:") stay. The surviving sources are renumbered in order
of first appearance, so `[n]` in the text and the n-th citation always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.text import ABBREVIATIONS

_MARKER_GROUP = re.compile(r"\[\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*\]")
# A sentence: up to its end mark (and any markers right after it) and the following spaces, or a line.
_SEGMENT = re.compile(r"[^.!?\n]*(?:[.!?]+(?:\s*\[[^\]\n]*\])*[.!?]*[ \t]*|\n|$)")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x01")
MAX_RANGE = 20
#: Sentences shorter than this are connective ("Byrådet vil:"), not claims that need a source.
MIN_CLAIM_CHARS = 25


@dataclass(frozen=True)
class GuardResult:
    text: str
    sources: tuple[int, ...]  # 1-based numbers of the given sources, in the order of the new [1], [2], …
    removed: int  # markers that pointed outside the given sources
    uncited_sentences: tuple[str, ...]  # claims with no marker at all: removed from the text
    dropped_sentences: tuple[str, ...] = ()  # claims whose every marker pointed outside the sources

    @property
    def has_citations(self) -> bool:
        return bool(self.sources)


def segments(text: str) -> list[str]:
    """Sentences and lines, so that "".join(segments(text)) == text; "ca." or "bl.a." ends none."""
    pieces = [p for p in _SEGMENT.findall(text) if p]
    merged: list[str] = []
    for piece in pieces:
        if merged and not merged[-1].endswith("\n") and _ends_in_abbreviation(merged[-1]):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _ends_in_abbreviation(segment: str) -> bool:
    """ "ca." and "bl.a." end no sentence; nor does "bl." (the first half of "bl.a.")."""
    words = segment.rstrip().split()
    if not words or not words[-1].endswith("."):
        return False
    base = words[-1].rstrip(".").lower()
    return base in ABBREVIATIONS or any(a.startswith(base + ".") for a in ABBREVIATIONS)


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
    """Check and renumber the citations of a generated answer that was given `n_sources` sources."""
    kept: list[str] = []
    dropped: list[str] = []
    uncited: list[str] = []
    removed = 0
    for segment in segments(text):
        numbers = [n for group in _MARKER_GROUP.findall(segment) for n in _numbers(group)]
        valid = _valid(numbers, n_sources)
        removed += len(numbers) - len(valid)
        claim = segment.strip()
        if numbers and not valid:
            dropped.append(claim)
        elif not numbers and len(claim) >= MIN_CLAIM_CHARS:
            uncited.append(claim)
        else:
            kept.append(segment)

    order: dict[int, int] = {}

    def renumber(match: re.Match[str]) -> str:
        new_numbers: list[int] = []
        for number in _valid(_numbers(match.group(1)), n_sources):
            new = order.setdefault(number, len(order) + 1)
            if new not in new_numbers:
                new_numbers.append(new)
        return "".join(f"\x00{n}\x01" for n in new_numbers)

    cleaned = _MARKER_GROUP.sub(renumber, "".join(kept))
    # Brackets left around a removed marker ("[1[99]2]") must not splice into a new one ("[12]").
    while spliced := _MARKER_GROUP.findall(cleaned):
        removed += sum(len(_numbers(g)) for g in spliced)
        cleaned = _MARKER_GROUP.sub("", cleaned)
    cleaned = _PLACEHOLDER.sub(lambda m: f"[{m.group(1)}]", cleaned)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return GuardResult(cleaned, tuple(order), removed, tuple(uncited), tuple(dropped))
