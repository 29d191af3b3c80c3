"""From retrieved hits to a cited Norwegian answer (the extractive backend), and the LCEL chain."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

from assistant.errors import InvalidQuestionError
from assistant.relevance import (
    Calibration,
    QueryWord,
    TermIndex,
    asks_for_invention,
    asks_quantity,
    has_summary_intent,
)
from assistant.retrieval import Scored
from assistant.text import content_terms, looks_english, stem
from assistant.types import Chunk, Citation

REFUSAL = "Leangen-erklæringen sier ikke noe om dette, så jeg kan ikke svare på det ut fra plattformen."
RELATED_INTRO = "Dette er de nærmeste løftene jeg fant:"
#: Leads an answer whose answerability is only just above the refusal threshold: on the dev
#: questions, half of such answers are to questions the platform does not cover.
NEAREST_INTRO = "Erklæringen svarer kanskje ikke direkte på dette. Det nærmeste den sier:"
MAX_TOPIC_CITATIONS = 30
#: Words that name no topic beside others: "i byen" means Trondheim itself ("Kva vil byrådet gjere
#: for studentane i byen?" asks about students), and «alt byrådet lover for folk som sykler» asks
#: about cycling.
GENERIC_WORDS = frozenset({"byen", "byn", "folk"})
#: Verbs that carry no topic in a request's «om …» phrase: «alle løftene om å få ned sykefraværet»
#: asks about sick leave. (Left out of every question, «få» cost a dev answer: «… lære meg språket
#: og få meg en jobb».)
LIGHT_VERBS = frozenset({"få"})
GROUP_BY_CHAPTER_FROM = 5
#: How far below the question's best chunk a listed item's best chunk may rank and still be cited
#: (chosen on dev: 0.02 missed «Hva lover byrådet om buss, trikk og tog?», 0.03 cited a wrong pledge).
ASPECT_MARGIN = 0.025
#: A request for a list gets the heading of its best-ranked chunks when this many agree on one
#: heading of at most `AGREEING_MAX` pledges (dev: 3 or 2 agreeing changed the same answer; with 2
#: and a cap of 30 «alle løftene om sykling» listed all of «Samferdsel», precision 0.935 → 0.923).
AGREEING_TOP = 3
AGREEING_MAX = 15


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


def standout(dense: np.ndarray) -> float:
    """How many standard deviations the best chunk lies above the question's mean score."""
    if len(dense) < 2:
        return 0.0
    spread = float(dense.std())
    return float((dense.max() - dense.mean()) / spread) if spread > 0 else 0.0


def _heading_groups(chunks: Sequence[Chunk]) -> dict[tuple[str, str, str], list[int]]:
    """Pledge positions per sub-heading, and per whole section (keyed with an empty sub-heading)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, chunk in enumerate(chunks):
        if chunk.kind != "pledge":
            continue
        groups.setdefault((chunk.chapter, chunk.section, ""), []).append(i)
        if chunk.subheading:
            groups.setdefault((chunk.chapter, chunk.section, chunk.subheading), []).append(i)
    return groups


def _title_terms(title: str) -> frozenset[str]:
    # A bracketed acronym ("Barne- og familietjenesten (BFT)") is optional in a question.
    return frozenset(content_terms(re.sub(r"\([^)]*\)", " ", title))) - {"byråd"}


def _title_acronyms(title: str) -> frozenset[str]:
    """A bracketed acronym names its heading on its own: «BoA» for "Bo- og aktivitetstilbudet (BoA)"."""
    return frozenset(stem(word) for word in re.findall(r"\((\w+)\)", title.lower()))


def _elided_terms(title: str) -> frozenset[str]:
    """The first halves of a shared compound ("Barne-" in "Barne- og familietjenesten", "Tros-" in
    "Tros- og livssynsmangfold"): a question may leave them out ("familietjenesten")."""
    return frozenset(content_terms(" ".join(re.findall(r"(\w+)-\s+og\b", title))))


def _title_match(
    query: list[QueryWord], title_terms: frozenset[str], optional: frozenset[str] = frozenset()
) -> tuple[int, int] | None:
    """(exact matches, title size) when every title word not `optional` is named by the question,
    else None.

    A question word may name a title word it begins ("tro" names "tros"), but an exact match
    ranks higher: "skole" means the sub-heading "Skole", not "Skolehelsetjenesten". A short word
    names a title word only up to an ending, not a compound it starts: "barn" (from "barne- og
    familietenesta") does not name "Barnehage"; unless the question names the heading's other
    words exactly: "rus og psykisk helse" names "Psykisk helse og rustjenester". A long title word
    is also named a letter or two off, as nynorsk and typos write it: "familietenesta" names
    "familietjenesten", "skulehelsetenesta" "skolehelsetjenesten".
    """
    if not title_terms - optional:
        return None
    exact = sum(1 for term in title_terms if any(w.stem == term for w in query))
    for term in title_terms:
        if term in optional or any(w.stem == term for w in query):
            continue
        if not any(
            _begins_title_word(w.stem, term, compound=exact > 0) or _near_title_word(w.stem, term) for w in query
        ):
            return None
    return exact, len(title_terms)


def _begins_title_word(stem: str, term: str, *, compound: bool = False) -> bool:
    begins = len(stem) >= 3 and term.startswith(stem)
    return (begins and (compound or len(stem) >= 5 or len(term) - len(stem) <= 3)) or _names_a_field(stem, term)


#: "barnehageområdet", "helsefeltet", "skolesektoren": a field named by its first part.
_FIELD_WORDS = ("områd", "felt", "sektor")


def _names_a_field(stem: str, term: str) -> bool:
    rest = stem[len(term) :] if len(term) >= 4 and stem.startswith(term) else ""
    return rest in _FIELD_WORDS or (rest[:1] in ("s", "e", "-") and rest[1:] in _FIELD_WORDS)


#: One letter may differ per this many letters of a title word: shorter words stay exact (one
#: letter turns "skole" into "skale", "barn" into "barm"); nynorsk "skulehelsetenest" names
#: "skolehelsetjenest" (17 letters, two off).
NEAR_TITLE_WORD_FROM = 8


def _near_title_word(stem: str, term: str) -> bool:
    allowed = len(term) // NEAR_TITLE_WORD_FROM
    return allowed > 0 and Levenshtein.distance(stem, term, score_cutoff=allowed) <= allowed


def select_heading(
    question: str, query: list[QueryWord], chunks: Sequence[Chunk], terms: TermIndex, best_ranked: int | None = None
) -> list[int] | None:
    """All pledges under a section or sub-heading the question names ("Hva står det om kulturskolen?").

    A question with more words than the heading's must ask for a summary ("Les løftene om
    kulturskolen for meg"), and its best-ranked chunk (`best_ranked`, when given) must lie under
    the heading: in "innvandrere og flyktninger – språk, arbeid, barnehage osv.?" the heading
    «Barnehage» is one item of a list, not the topic.
    """
    if asks_quantity(question):
        return None
    summary = has_summary_intent(question)
    best: list[int] | None = None
    best_rank: tuple[int, int] = (-1, -1)
    for (_chapter, section, subheading), positions in _heading_groups(chunks).items():
        title = subheading or section
        title_terms = _title_terms(title)
        acronyms = _title_acronyms(title)
        if any(w.stem in acronyms for w in query):
            rank: tuple[int, int] | None = (len(title_terms), len(title_terms))
        else:
            rank = _title_match(query, title_terms, _elided_terms(title))
        if rank is None:
            continue
        extra = [
            w
            for w in query
            if w.stem not in acronyms
            and not any(
                w.stem == t or t.startswith(w.stem) or _near_title_word(w.stem, t) or _names_a_field(w.stem, t)
                for t in title_terms
            )
        ]
        if extra and (not summary or (best_ranked is not None and best_ranked not in positions)):
            continue
        # Prefer exact words, then the most specific heading (most title words).
        if rank > best_rank:
            best, best_rank = positions, rank
    return best


#: What a request for a list names as its topic: "alle løftene om sykefravær", "hva står det om
#: Heimdal i byrådserklæringen?" (up to the end of the clause).
_TOPIC_PHRASE = re.compile(r"\b(?:om|about|angående)\s+([^?.!:;,–—(«»\"]+)", re.IGNORECASE)
#: After a topic phrase, the rest of a list: «…om ventetid, PPT og disse spesialtilbudene?».
_LIST_GOES_ON = re.compile(r",\s*[^,.?!:;–—]{1,40}?\s(?:og|eller|and|or)\s", re.IGNORECASE)


def select_topic(question: str, query: list[QueryWord], chunks: Sequence[Chunk], terms: TermIndex) -> list[int] | None:
    """All pledges on a topic: "alle løfter om sykkel", or a one-word topic ("Hva vil byrådet gjøre
    for studenter?", "LHBTQ") that several pledges name. A question for a number ("Hvor mange
    studenter …") is not a request for a list.

    When no pledge has every word of a request for a list, the words after its "om" name the
    topic: in "Kan du sette opp en oversikt over alt byrådet lover om sykefravær? Jeg tenker både
    helse, skole og …" the topic is «sykefravær»."""
    if len(query) > 1:
        query = [w for w in query if w.stem not in GENERIC_WORDS] or query
    if not query or asks_quantity(question) or (len(query) > 1 and not has_summary_intent(question)):
        return None
    positions = _pledges_with_all(query, chunks, terms)
    if len(query) == 1 and not has_summary_intent(question) and len(positions) < 2:
        return None
    if not positions and len(query) > 1:
        for match in _TOPIC_PHRASE.finditer(question):
            if _LIST_GOES_ON.match(question, match.end()):
                continue  # the first item of a list («om ventetid, PPT og spesialtilbudene»), not the topic
            focus = [w for w in terms.query_words(match.group(1)) if w.stem not in GENERIC_WORDS | LIGHT_VERBS]
            if focus and len(focus) < len(query) and len(found := _pledges_with_all(focus, chunks, terms)) >= 2:
                return found
    return positions or None


def heading_ranked_first(question: str, ranked: Sequence[int], chunks: Sequence[Chunk]) -> list[int] | None:
    """All pledges under the heading of the best-ranked chunks, for a request for a list that names
    no heading in its words: "Could you list everything in the platform's section on women's
    health?" (English names no Norwegian heading), «løfter på rus- og psykiatrifeltet». The
    `AGREEING_TOP` best chunks must all lie under one heading of at most `AGREEING_MAX` pledges:
    a larger heading («Samferdsel», 28) is more than such a request asks for."""
    if not ranked or not has_summary_intent(question) or asks_quantity(question):
        return None
    keys = {(chunks[i].chapter, chunks[i].section, chunks[i].subheading or "") for i in ranked[:AGREEING_TOP]}
    if len(keys) != 1:
        return None
    group = _heading_groups(chunks).get(keys.pop(), [])
    return group if 2 <= len(group) <= AGREEING_MAX else None


def _pledges_with_all(query: list[QueryWord], chunks: Sequence[Chunk], terms: TermIndex) -> list[int]:
    return [
        i
        for i, chunk in enumerate(chunks)
        if chunk.kind == "pledge" and all(terms.matches(w, i, with_heading=False) for w in query)
    ]


def _widened_to_topic(
    heading: list[int],
    question: str,
    query: list[QueryWord],
    chunks: Sequence[Chunk],
    terms: TermIndex,
    scored: Scored,
) -> list[int]:
    """A single word that only begins the heading's word ("studenter" → «Studenthelse») names a
    topic wider than the heading: the pledges elsewhere that use the word belong to the answer
    («redusere kollektivprisene for studenter»). A question naming the heading itself gets the
    heading alone."""
    first = chunks[heading[0]]
    if len(query) != 1 or query[0].stem in _title_terms(first.subheading or first.section):
        return heading
    elsewhere = [i for i in select_topic(question, query, chunks, terms) or () if i not in heading]
    room = max(0, MAX_TOPIC_CITATIONS - len(heading))
    elsewhere = sorted(elsewhere, key=lambda i: -float(scored.fused[i]))[:room]
    return sorted([*heading, *elsewhere])


def select(
    question: str,
    scored: Scored,
    ranked: Sequence[int],
    chunks: Sequence[Chunk],
    terms: TermIndex,
    calibration: Calibration,
    *,
    unknown_shift: float = 0.0,
    aspect_tops: Sequence[int] = (),
) -> Selection:
    """Cite, list a heading or topic, or refuse. `unknown_shift` is how far the question's
    embedding moves when the words the platform never uses are left out; `aspect_tops` are the
    best chunks for each item of a list the question names (see `Retrieved`)."""
    query = terms.query_words(question)
    candidates = list(ranked)
    coverage = {i: terms.coverage(query, i) for i in candidates}
    answerability = (
        standout(scored.dense)
        + calibration.answer_coverage_weight * max(coverage.values(), default=0.0)
        + calibration.answer_known_weight * terms.known_share(query)
        + calibration.answer_view_weight * scored.best_view
    )
    heading = select_heading(question, query, chunks, terms, candidates[0] if candidates else None)
    if heading:
        heading = _widened_to_topic(heading, question, query, chunks, terms, scored)
        return Selection(tuple(chunks[i] for i in heading), False, (), "section", answerability)
    # A question none of whose words the platform uses (and that is not English, where no
    # Norwegian word could match) is about something the platform does not mention.
    english = looks_english(question)
    unknown_topic = bool(query) and terms.known_share(query) == 0.0 and not english
    topic = select_topic(question, query, chunks, terms)
    # A request for everything on a topic that several pledges name word for word ("Ka sei dokker
    # om bussan?") is answered from those pledges, however little any single one stands out.
    listed = bool(topic) and has_summary_intent(question) and len(topic or ()) >= 2
    # A question that rests on a word the platform never uses («overvåkingskameraer») and would get
    # only a hedged answer is about a neighbouring topic the platform skips; so is one that rests
    # on such words heavily, however well its other words match.
    hedged = answerability < calibration.threshold + calibration.hedge_margin
    shifted = 0 < calibration.unknown_shift_min <= unknown_shift
    strongly_shifted = 0 < calibration.unknown_shift_strong <= unknown_shift
    reason = ""
    if asks_for_invention(question):
        reason = "the question asks for a made-up figure or pledge"
    elif unknown_topic:
        reason = "the platform uses none of the question's words"
    elif not listed and answerability < calibration.threshold:
        reason = f"answerability {answerability:.2f} < threshold {calibration.threshold:.2f}"
    elif not listed and hedged and shifted:
        reason = (
            f"the question rests on words the platform never uses (shift {unknown_shift:.3f}) and "
            f"answerability {answerability:.2f} is in the hedge band"
        )
    elif not listed and strongly_shifted:
        reason = (
            f"the question rests heavily on words the platform never uses (shift {unknown_shift:.3f} "
            f">= {calibration.unknown_shift_strong:.3f})"
        )
    if reason:
        related = tuple(chunks[i] for i in candidates[:3])
        return Selection((), True, related, "refused", answerability, reason)
    agreed = None if topic else heading_ranked_first(question, candidates, chunks)
    if agreed:
        return Selection(tuple(chunks[i] for i in agreed), False, (), "section", answerability)
    if topic:
        topic = sorted(topic, key=lambda i: -float(scored.fused[i]))[:MAX_TOPIC_CITATIONS]
        topic.sort()
        return Selection(tuple(chunks[i] for i in topic), False, (), "topic", answerability)
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
    # Just above the threshold, say so: the nearest pledges may not be what was asked about.
    mode = "nearest" if hedged else "ranked"
    return Selection(tuple(answer), False, (), mode, answerability)


def with_marker(text: str, marker: str) -> str:
    """Put the citation marker inside the sentence: "… i året [1]."."""
    body = text.rstrip()
    end = "."
    if body.endswith((".", "!", "?")):
        end = body[-1]
        body = body[:-1].rstrip()
    return f"{body.rstrip(',;:')} {marker}{end}"


def _pledge_sentence(text: str, marker: str, *, also: bool) -> str:
    lead = "Byrådet vil også" if also else "Byrådet vil"
    return f"{lead} {with_marker(text, marker)}"


def _passage_sentence(text: str, marker: str) -> str:
    return f"Erklæringen sier: «{text.rstrip()}» {marker}"


def compose(selection: Selection, unit_texts: Mapping[str, str] | None = None) -> tuple[str, tuple[Citation, ...]]:
    """Write the answer: pledges read as sentences, grouped by chapter when there are many.

    `unit_texts` maps unit ids to their full text, for citations of a piece of a long passage.
    """
    if selection.refused:
        return REFUSAL, ()
    texts = unit_texts or {}
    citations = tuple(
        Citation(n, chunk, texts.get(chunk.unit_id, chunk.text)) for n, chunk in enumerate(selection.cited, start=1)
    )
    chapters = list(dict.fromkeys(c.chunk.chapter for c in citations))
    if len(citations) < GROUP_BY_CHAPTER_FROM:
        sentences = []
        pledges_seen = 0
        for citation in citations:
            marker = f"[{citation.n}]"
            if citation.chunk.kind == "pledge":
                sentences.append(_pledge_sentence(citation.chunk.text, marker, also=pledges_seen > 0))
                pledges_seen += 1
            else:
                sentences.append(_passage_sentence(citation.chunk.text, marker))
        if selection.mode == "nearest":
            sentences.insert(0, NEAREST_INTRO)
        return " ".join(sentences), citations
    lines = [f"Leangen-erklæringen har {len(citations)} punkter om dette. Byrådet vil:"]
    for chapter in chapters:
        if len(chapters) > 1:
            lines.append(f"\n**{chapter}**")
        for citation in citations:
            if citation.chunk.chapter != chapter:
                continue
            text = citation.chunk.text.rstrip()
            if citation.chunk.kind == "passage":
                lines.append(f"- «{text}» [{citation.n}]")
            else:
                lines.append(f"- {with_marker(text, f'[{citation.n}]')}")
    return "\n".join(lines), citations
