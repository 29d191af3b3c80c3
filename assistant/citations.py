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
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.text import ABBREVIATIONS, content_terms

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


#: A cited sentence must share at least this share of its content words (stemmed) with a source
#: it cites. On the 1.5B model's answers to the local-40 subset, sentences that say what their
#: source says score 0.95-1.0; misattributed or invented ones 0-0.57 (docs/local-llm.md).
SUPPORT_MIN_SHARE = 0.8
#: Words every pledge is read with («Byrådet vil …»): they support nothing.
_FRAME_TERMS = frozenset({"byråd"})


@dataclass(frozen=True)
class SupportResult:
    text: str
    repointed: int  # sentences whose markers were moved to the one given source that says it
    unsupported: tuple[str, ...]  # cited sentences no given source says: removed from the text


def _terms(text: str) -> set[str]:
    return {t for t in content_terms(_MARKER_GROUP.sub(" ", text)) if t not in _FRAME_TERMS}


def _repoint(segment: str, number: int) -> str:
    """The segment with its first marker group replaced by `[number]` and any others removed."""
    replaced = False

    def one(_match: re.Match[str]) -> str:
        nonlocal replaced
        if replaced:
            return ""
        replaced = True
        return f"[{number}]"

    return _MARKER_GROUP.sub(one, segment)


def check_support(text: str, sources: Sequence[str], min_share: float = SUPPORT_MIN_SHARE) -> SupportResult:
    """Each cited sentence must say what a source it cites says, judged by shared content words.

    For small models, which copy their sources: a sentence none of whose cited sources shares
    `min_share` of its words is re-pointed to the single other source that does (a pledge copied
    under the wrong number), or removed (a claim no source makes: «Byrådet vil legge ned
    kulturskolen [1]»). Markers outside the sources and sentences without markers are left to
    `guard`, which runs after this on the result.
    """
    source_terms = [_terms(s) for s in sources]

    def share(words: set[str], numbers: Sequence[int]) -> float:
        said = set().union(*(source_terms[n - 1] for n in numbers))
        return len(words & said) / len(words)

    kept: list[str] = []
    unsupported: list[str] = []
    repointed = 0
    for segment in segments(text):
        numbers = _valid([n for group in _MARKER_GROUP.findall(segment) for n in _numbers(group)], len(sources))
        words = _terms(segment)
        # Together: «A og B [1][2]» may join two pledges.
        if not numbers or not words or share(words, numbers) >= min_share:
            kept.append(segment)
            continue
        # The best-supporting source; on a tie the best-ranked (a pledge and the passage repeating it).
        best_share, best = max((share(words, [n]), -n) for n in range(1, len(sources) + 1))
        if best_share >= min_share:
            kept.append(_repoint(segment, -best))
            repointed += 1
        else:
            unsupported.append(segment.strip())
    return SupportResult("".join(kept), repointed, tuple(unsupported))
