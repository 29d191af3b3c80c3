"""Which units an answer cites, or whether it is refused: the extractive backend's decision.

The question's scope (`assistant.scope`) says what the answer covers. A broad scope (a heading,
a chapter, a theme, the document, pledges with an attribute) is cited whole; a unit question is
answered from the ranking, under the answerability rules below.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.errors import InvalidQuestionError
from assistant.relevance import Calibration, TermIndex
from assistant.retrieval import Scored
from assistant.scope import UNIT_SCOPE, Catalogue, Scope, asked_detail
from assistant.text import looks_english
from assistant.types import Chunk

#: How far below the question's best chunk a listed item's best chunk may rank and still be cited
#: (chosen on dev: 0.02 missed «Hva lover byrådet om buss, trikk og tog?», 0.03 cited a wrong pledge).
ASPECT_MARGIN = 0.025
#: Pledges a chapter summary cites per heading, by the heading's size: all of a small heading,
#: its most central ones of a larger one.
CENTRAL_PER_HEADING = ((3, 3), (8, 2), (15, 3))
CENTRAL_MAX = 4


def _clean_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Cf", "Cs") or ch == "\ufffd":
        return ""
    if category in ("Cc", "Zl", "Zp"):
        return " "
    return ch


def clean_question(raw: str, max_chars: int) -> str:
    """Validate and tidy a question; raise a Norwegian message the user can act on."""
    # Control characters and line separators become spaces; invisible format characters (soft
    # hyphens, zero-width joiners) and lone surrogates vanish, so "fritids\u00adkort" stays a word.
    text = "".join(_clean_char(ch) for ch in raw)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise InvalidQuestionError("Spørsmålet er tomt. Skriv et spørsmål om Leangen-erklæringen.")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"Spørsmålet er for langt ({len(text)} tegn). Skriv det kortere, under {max_chars} tegn."
        )
    if not any(ch.isalnum() for ch in text):
        raise InvalidQuestionError(
            "Spørsmålet inneholder ingen ord. Skriv et spørsmål med ord, for eksempel "
            "«Hva vil byrådet gjøre med fastlegeordningen?»."
        )
    return text


@dataclass(frozen=True)
class Selection:
    """What the answer stage decided: the chunks to cite (in order), or a refusal."""

    cited: tuple[Chunk, ...]
    refused: bool
    related: tuple[Chunk, ...]
    mode: str
    answerability: float
    #: Why the question was refused, for the logs ("" when it was answered).
    reason: str = ""
    scope: Scope = UNIT_SCOPE


def standout(dense: np.ndarray) -> float:
    """How many standard deviations the best chunk lies above the question's mean score."""
    if len(dense) < 2:
        return 0.0
    spread = float(dense.std())
    return float((dense.max() - dense.mean()) / spread) if spread > 0 else 0.0


def central_units(scope: Scope, catalogue: Catalogue) -> list[str]:
    """A chapter's summary: the prose commitments of its sections, then each heading's most
    central pledges (all of a small heading)."""
    chapter = scope.topics[0]
    if not chapter.headings:
        return list(chapter.units)  # the introduction: prose only
    chosen = [u for u in chapter.units if catalogue.units[u].kind == "statement" and not catalogue.units[u].subheading]
    for key in chapter.headings:
        ranked = list(catalogue.central.get(key, ()))
        take = next((n for size, n in CENTRAL_PER_HEADING if len(ranked) <= size), CENTRAL_MAX)
        chosen += ranked[:take]
    return chosen


def select(
    question: str,
    scored: Scored,
    ranked: Sequence[int],
    chunks: Sequence[Chunk],
    terms: TermIndex,
    calibration: Calibration,
    catalogue: Catalogue,
    scope: Scope = UNIT_SCOPE,
    *,
    unknown_shift: float = 0.0,
    aspect_tops: Sequence[int] = (),
) -> Selection:
    """Cite the scope, or answer from the ranking, or refuse. `unknown_shift` is how far the
    question's embedding moves when the words the platform never uses are left out; `aspect_tops`
    are the best chunks for each item of a list the question names (see `Retrieved`)."""
    query = terms.query_words(question)
    candidates = list(ranked)
    coverage = {i: terms.coverage(query, i) for i in candidates}
    answerability = (
        standout(scored.dense)
        + calibration.answer_coverage_weight * max(coverage.values(), default=0.0)
        + calibration.answer_known_weight * terms.known_share(query)
        + calibration.answer_view_weight * scored.best_view
    )
    related = tuple(chunks[i] for i in candidates[:3])
    if scope.kind == "chat":
        return Selection((), False, (), "chat", answerability, scope=scope)
    if scope.kind == "none":
        return Selection((), True, related, "refused", answerability, scope.reason, scope)
    if scope.kind != "unit" and scope.named:
        return _whole_scope(scope, catalogue, answerability, related)
    # A question none of whose words the platform uses (and that is not English, where no
    # Norwegian word could match) is about something the platform does not mention.
    english = looks_english(question)
    unknown_topic = bool(query) and terms.known_share(query) == 0.0 and not english
    # A question that rests on a word the platform never uses («overvåkingskameraer») and would get
    # only a hedged answer is about a neighbouring topic the platform skips; so is one that rests
    # on such words heavily, however well its other words match.
    hedged = answerability < calibration.threshold + calibration.hedge_margin
    shifted = 0 < calibration.unknown_shift_min <= unknown_shift
    strongly_shifted = 0 < calibration.unknown_shift_strong <= unknown_shift
    reason = ""
    if unknown_topic:
        reason = "the platform uses none of the question's words"
    elif answerability < calibration.threshold:
        reason = f"answerability {answerability:.2f} < threshold {calibration.threshold:.2f}"
    elif hedged and shifted:
        reason = (
            f"the question rests on words the platform never uses (shift {unknown_shift:.3f}) and "
            f"answerability {answerability:.2f} is in the hedge band"
        )
    elif strongly_shifted:
        reason = (
            f"the question rests heavily on words the platform never uses (shift {unknown_shift:.3f} "
            f">= {calibration.unknown_shift_strong:.3f})"
        )
    if reason:
        return Selection((), True, related, "refused", answerability, reason, UNIT_SCOPE)
    if scope.kind != "unit":
        return _whole_scope(scope, catalogue, answerability, related)
    # An English question's words match only the English expansion questions of some pledges
    # ("new", "planning"), which says little about which pledge answers: its citations follow the
    # scores alone.
    cite_coverage_weight = 0.0 if english else calibration.cite_coverage_weight
    relevance = {
        i: float(scored.fused[i])
        + cite_coverage_weight * coverage[i]
        - (calibration.passage_penalty if chunks[i].kind == "passage" else 0.0)
        for i in candidates
    }
    best = max(relevance.values(), default=0.0)
    chosen = sorted((i for i in candidates if relevance[i] >= best - calibration.margin), key=lambda i: -relevance[i])
    cited: dict[str, Chunk] = {}
    for i in chosen:
        cited.setdefault(chunks[i].unit_id, chunks[i])  # one citation per pledge or passage
    answer = list(cited.values())[: calibration.max_citations]
    # Each item of a listed «buss, trikk og tog» gets its best pledge, when the whole question ranks
    # that pledge close to its best too (a check against an item read out of context).
    best_fused = max((float(scored.fused[i]) for i in candidates), default=0.0)
    for i in aspect_tops:
        if float(scored.fused[i]) >= best_fused - ASPECT_MARGIN and all(c.unit_id != chunks[i].unit_id for c in answer):
            answer.append(chunks[i])
    detail = asked_detail(question)
    if detail and not any(detail in catalogue.attributes.get(c.unit_id, frozenset()) for c in answer):
        # «Hvor mange nye lærere …?» answered by a pledge with no number would pretend.
        reason = f"the question asks for a {detail} that none of the nearest units gives"
        return Selection(tuple(answer), False, (), "not_given", answerability, reason, Scope("unit", detail))
    # Just above the threshold, say so: the nearest pledges may not be what was asked about.
    mode = "nearest" if hedged else "ranked"
    return Selection(tuple(answer), False, (), mode, answerability)


def _whole_scope(scope: Scope, catalogue: Catalogue, answerability: float, related: tuple[Chunk, ...]) -> Selection:
    units = central_units(scope, catalogue) if scope.kind == "chapter" else list(scope.units)
    if not units and scope.kind != "document":
        reason = f"no unit of the platform has what the question asks for ({scope.name})"
        return Selection((), True, related, "refused", answerability, reason, scope)
    return Selection(tuple(catalogue.chunk(u) for u in units), False, (), scope.kind, answerability, scope=scope)
