"""Leakage from the evaluation questions into the search aids (expansions and theme names).

The search expansions (`corpus/expansions`) and the theme index (`corpus/themes`) are written to
FIND a unit the way residents talk; they are never shown. When their wording copies an evaluation
question, the evaluation measures memorised wording instead of unseen wording. This module finds
such copies with three rules, from the most to the least blatant:

- exact copy: an expansion query equal to a question (after normalisation), or a term or theme
  name equal to a question about its unit when that unit's own text does not say it;
- near copy: an expansion query of two or more content words that has the question's content
  words in another order, or covers at least half of them closely (rapidfuzz token-sort or
  token-set ratio on stemmed content words, stop words removed) and shares a word of its own
  (neither the platform's nor everyday) with it;
- shared phrase: a run of content words in a row that a Norwegian question and an expansion (or
  theme name) of its gold unit, or of a unit next to it, have in common and the platform text does
  not have: two words when one of them is neither the platform's nor an everyday word («bråk fra
  veien»), three or more unless all of them are the platform's («selge bil nummer to»).

A question may quote the platform: wording the platform uses is never a leak.

Pure: it takes parsed questions, search aids and platform units and returns findings; reading the
files is `assistant.leakage_report`'s job.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any, Literal

from rapidfuzz import fuzz
from wordfreq import zipf_frequency

from assistant.text import QUESTION_WORDS, STOPWORDS, stem, words
from assistant.types import Unit

LeakKind = Literal["exact copy", "near copy", "shared phrase"]
AidField = Literal["query", "term", "theme name"]

#: A word at least this common in written Norwegian (bokmål) is an everyday word (Zipf scale;
#: 4.5 is about thirty times per million words): «lang tid», «fast jobb», «kjøre bil» are phrases
#: anyone writes, «bråk fra veien» or «taket lekker» are not.
EVERYDAY_ZIPF = 4.5
#: Shared runs of content words are looked for up to this length (a longer copy shows as several).
LONGEST_RUN = 4
#: Content words in any order, only stop words and inflection apart: the query is the question.
SAME_WORDS_RATIO = 95.0
#: A query this close to a question by word order (token-sort) or word set (token-set) is a near
#: copy when it covers at least `NEAR_COPY_COVER` of the question's content words and what they
#: share includes wording of their own (neither the platform's nor everyday).
NEAR_COPY_SORT_RATIO = 80.0
NEAR_COPY_SET_RATIO = 85.0
NEAR_COPY_COVER = 0.5
#: Another spelling of a platform word («familietenesta» for «familietjenesten») counts as the
#: platform's word: the same first letters, and this close by edit distance.
SPELLING_VARIANT_RATIO = 75.0
SPELLING_VARIANT_PREFIX = 3
#: A platform compound contains a shorter word as its head or tail («omsorg» in
#: «omsorgstjenester») when the shorter word's stem is at least this long.
COMPOUND_PART_MIN = 4

#: A finding quotes this much of a long question (its id names it).
QUOTED_QUESTION_MAX = 160

#: English function words: the Norwegian stop-word list does not know them.
ENGLISH_FUNCTION_WORDS = frozenset(
    """
    a an the and or but if of to in on at by for from with without into onto about as than then
    is are was were be been being am do does did done have has had will would shall should can
    could may might must i me my we us our you your he him his she her it its they them their
    this that these those what which who whom whose when where why how there here not no yes
    any some all every each more most much many very so too just also only even still yet
    """.split()
)
#: Everyday nynorsk and Trøndersk words that wordfreq's bokmål list misses or ranks low: they
#: make no phrase rare («ska sjukefravære», «dæm gamle», «meir mat»).
DIALECT_EVERYDAY_WORDS = frozenset(
    """
    ska te ka kem kæm dæm dokker dokk æ meir fleire fleir innan kvart kvar nåkka nån itj heile
    heilt sjølv berre frå kor kjem kjæm bi mæ sæ dæ gjer gjere treng saman mykje mykkje åt ho
    ikkje heim heime kome vere verte nokon noko nokre nåkken kossen åssen mang tel annan ongan
    ungan dessutan òg gong gonger ganga
    """.split()
)
#: Nynorsk and Trøndersk spellings, rewritten to bokmål before a word is looked up in the
#: (bokmål) platform: «bustader» is the platform's «boliger», «sjukepleiar» its «sykepleier».
BOKMAL_FRAGMENTS = (
    ("bustad", "bolig"),
    ("sjuk", "syk"),
    ("skul", "skol"),
    ("tenest", "tjenest"),
    ("tilbod", "tilbud"),
    ("kyrkj", "kirk"),
    ("heim", "hjem"),
    ("fleir", "fler"),
    ("meir", "mer"),
    ("leige", "leie"),
    ("eige", "eie"),
)
BOKMAL_ENDINGS = (("arar", "ere"), ("ane", "ene"), ("ar", "er"), ("leg", "lig"), ("ast", "es"))


@dataclass(frozen=True)
class EvalQuestion:
    """One evaluation question, as far as leakage is concerned."""

    id: str
    text: str
    split: str
    category: str
    lang: str
    gold: tuple[str, ...]


@dataclass(frozen=True)
class SearchAid:
    """One text written to find units: an expansion query or term, or a theme name."""

    file: str
    line: int
    #: The unit id of an expansion, the theme id of a theme.
    owner: str
    field: AidField
    text: str
    #: The units it leads to: the expanded unit, or every unit of the theme.
    units: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    kind: LeakKind
    aid: SearchAid
    question: EvalQuestion
    why: str

    def __str__(self) -> str:
        aid, question = self.aid, self.question
        asked = (
            question.text if len(question.text) <= QUOTED_QUESTION_MAX else question.text[:QUOTED_QUESTION_MAX] + "…"
        )
        return (
            f"{aid.file}:{aid.line} [{aid.owner}] {aid.field} «{aid.text}» ~ {question.id} "
            f"({question.split}, {question.category}) «{asked}»: {self.kind}: {self.why}"
        )


# --- parsing (text in, records out; the caller reads the files) ----------------------------------


def parse_questions(text: str) -> list[EvalQuestion]:
    """The evaluation questions of `eval/questions.jsonl`."""
    questions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        questions.append(
            EvalQuestion(
                id=raw["id"],
                text=raw["question"],
                split=raw["split"],
                category=raw["category"],
                lang=raw.get("lang", "nb"),
                gold=tuple(raw.get("gold", ())),
            )
        )
    return questions


def _json_lines(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            raw = json.loads(line)
            if isinstance(raw, dict):
                yield number, raw


def parse_expansions(file: str, text: str) -> list[SearchAid]:
    """Every query and term of an expansion file, with its file, line and unit."""
    aids: list[SearchAid] = []
    for number, raw in _json_lines(text):
        unit_id = str(raw["id"])
        aids += [SearchAid(file, number, unit_id, "query", str(v), (unit_id,)) for v in raw.get("queries", [])]
        aids += [SearchAid(file, number, unit_id, "term", str(v), (unit_id,)) for v in raw.get("terms", [])]
    return aids


def parse_theme_names(file: str, text: str) -> list[SearchAid]:
    """Every name of every theme (its `name` and its `names`), with its file, line and units."""
    aids: list[SearchAid] = []
    for number, raw in _json_lines(text):
        units = tuple(str(u) for u in raw.get("units", []))
        names = dict.fromkeys([str(raw["name"]), *(str(n) for n in raw.get("names", []))])
        aids.extend(SearchAid(file, number, str(raw["id"]), "theme name", name, units) for name in names)
    return aids


# --- words ------------------------------------------------------------------------------------


def leak_words(text: str) -> list[str]:
    """Content words in order: stop words, question boilerplate, English function words and single
    letters removed; a hyphenated word stays whole («e-sport», «30-sone»)."""
    tokens: list[str] = []
    parts_to_skip = 0
    for word in words(text):
        # `words` follows a hyphenated word with its parts; a phrase is made of the whole word.
        if parts_to_skip:
            parts_to_skip -= 1
            continue
        if "-" in word:
            parts_to_skip = sum(1 for part in word.split("-") if part)
        if word in STOPWORDS or word in QUESTION_WORDS or word in ENGLISH_FUNCTION_WORDS:
            continue
        if len(word) >= 2 or word.isdigit():
            tokens.append(word)
    return tokens


def normalised(text: str) -> str:
    """Lower-cased words joined by single spaces: «Ishall Tiller?» and «ishall tiller» are equal."""
    return " ".join(words(text))


def bokmal_spelling(word: str) -> str:
    """`word` with nynorsk and Trøndersk spellings rewritten to bokmål («bydelar» → «bydeler»)."""
    for nynorsk, bokmal in BOKMAL_FRAGMENTS:
        word = word.replace(nynorsk, bokmal)
    for nynorsk, bokmal in BOKMAL_ENDINGS:
        if word.endswith(nynorsk) and len(word) > len(nynorsk) + 2:
            return word[: -len(nynorsk)] + bokmal
    return word


@lru_cache(maxsize=50_000)
def is_everyday(word: str, lang: str = "nb") -> bool:
    """Whether `word` is an everyday word: common in written bokmål (wordfreq), or in English for
    an English question; a number, or a nynorsk or dialect form of an everyday word, is too."""
    if word.isdigit() or word in DIALECT_EVERYDAY_WORDS:
        return True
    if lang == "en":
        return zipf_frequency(word, "en") >= EVERYDAY_ZIPF
    return max(zipf_frequency(word, "nb"), zipf_frequency(bokmal_spelling(word), "nb")) >= EVERYDAY_ZIPF


def _phrases(stems: Sequence[str]) -> set[tuple[str, ...]]:
    """Every run of two to `LONGEST_RUN` consecutive stems."""
    return {tuple(stems[i : i + n]) for n in range(2, LONGEST_RUN + 1) for i in range(len(stems) - n + 1)}


# --- the platform ---------------------------------------------------------------------------------


class Platform:
    """What the platform itself says, which anyone may quote: its words and phrases, unit by unit,
    and which units are next to which."""

    def __init__(self, units: Sequence[Unit], statements: Sequence[Unit] = ()) -> None:
        """`units`: the pledges and passages in document order; `statements`: the commitment
        sentences of the passages (a gold id may name one; its passage holds the expansions)."""
        phrases: set[tuple[str, ...]] = set()
        self._unit_words: dict[str, frozenset[str]] = {}
        self._unit_stems: dict[str, tuple[str, ...]] = {}
        for unit in units:
            heading = " ".join(p for p in (unit.chapter, unit.section, unit.subheading or "") if p)
            own_words = leak_words(heading) + leak_words(unit.text)
            phrases |= _phrases([stem(w) for w in leak_words(heading)])
            phrases |= _phrases([stem(w) for w in leak_words(unit.text)])
            self._unit_words[unit.id] = frozenset(own_words)
            self._unit_stems[unit.id] = tuple(stem(w) for w in own_words)
        vocabulary = frozenset().union(*self._unit_words.values())
        #: Runs of two to `LONGEST_RUN` content-word stems of its text and of its headings.
        self.phrases = frozenset(phrases)
        self._stems = frozenset(stem(w) for w in vocabulary)
        self._vocabulary = tuple(sorted(w for w in vocabulary if w.isalpha()))
        self._neighbourhood: dict[str, frozenset[str]] = {}
        for position, unit in enumerate(units):
            around = units[max(position - 1, 0) : position + 2]
            self._neighbourhood[unit.id] = frozenset(u.id for u in around if u.doc_id == unit.doc_id)
        self._passage_of = {s.id: s.parent for s in statements if s.parent}

    def expanded_unit(self, unit_id: str) -> str:
        """The unit whose expansions serve `unit_id`: a statement's passage, else itself."""
        return self._passage_of.get(unit_id, unit_id)

    def near_units(self, unit_ids: Iterable[str]) -> frozenset[str]:
        """The units `unit_ids` name and the units just before and after each in its document."""
        near: set[str] = set()
        for unit_id in map(self.expanded_unit, unit_ids):
            near |= self._neighbourhood.get(unit_id, frozenset({unit_id}))
        return frozenset(near)

    def uses_stem(self, word_stem: str) -> bool:
        return word_stem in self._stems

    @lru_cache(maxsize=50_000)  # noqa: B019 - one platform per check, alive as long as the check
    def uses_word(self, word: str) -> bool:
        """Whether the platform uses `word`: the same stem, in nynorsk or dialect spelling or not,
        as a part of one of its compounds («omsorg» in «omsorgstjenester»), or spelt a little
        differently («familietenesta»)."""
        return any(_word_in(form, self._stems, self._vocabulary) for form in {word, bokmal_spelling(word)})

    def unit_says(self, unit_id: str, text: str) -> bool:
        """Whether the unit's own text or headings say `text`: its content words in a row, or
        (one word) as a part of one of the unit's compounds."""
        own = self._unit_stems.get(unit_id, ())
        wanted = [stem(w) for w in leak_words(text)]
        if len(wanted) == 1:
            words_of_unit = self._unit_words.get(unit_id, frozenset())
            return _word_in(leak_words(text)[0], frozenset(own), tuple(words_of_unit))
        return bool(wanted) and any(tuple(own[i : i + len(wanted)]) == tuple(wanted) for i in range(len(own)))


def _word_in(word: str, stems: frozenset[str], vocabulary: Sequence[str]) -> bool:
    """Whether `word` is one of `vocabulary`'s words: its stem, a compound's head or tail, or a
    spelling variant."""
    word_stem = stem(word)
    if word_stem in stems:
        return True
    if len(word_stem) >= COMPOUND_PART_MIN and any(
        len(known) > len(word_stem) and (known.startswith(word_stem) or known.endswith(word_stem))
        for known in vocabulary
    ):
        return True
    if len(word) < SPELLING_VARIANT_PREFIX + 3 or not word.isalpha():
        return False
    prefix = word[:SPELLING_VARIANT_PREFIX]
    return any(known.startswith(prefix) and fuzz.ratio(word, known) >= SPELLING_VARIANT_RATIO for known in vocabulary)


# --- the rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Question:
    """A question with what the rules read of it."""

    question: EvalQuestion
    words: tuple[str, ...]
    stems: tuple[str, ...]
    #: Its runs of two to `LONGEST_RUN` stems.
    runs: frozenset[tuple[str, ...]]
    #: Its gold units (as the units that hold expansions) and their neighbours.
    near: frozenset[str]
    gold: frozenset[str]


def _prepare(question: EvalQuestion, platform: Platform) -> _Question:
    question_words = tuple(leak_words(question.text))
    question_stems = tuple(stem(w) for w in question_words)
    return _Question(
        question=question,
        words=question_words,
        stems=question_stems,
        runs=frozenset(_phrases(question_stems)),
        near=platform.near_units(question.gold),
        gold=frozenset(map(platform.expanded_unit, question.gold)),
    )


@dataclass(frozen=True)
class _Aid:
    """A search aid with what the rules read of it."""

    aid: SearchAid
    words: tuple[str, ...]
    stems: tuple[str, ...]
    runs: frozenset[tuple[str, ...]]


def _prepare_aid(aid: SearchAid) -> _Aid:
    aid_words = tuple(leak_words(aid.text))
    aid_stems = tuple(stem(w) for w in aid_words)
    return _Aid(aid, aid_words, aid_stems, frozenset(_phrases(aid_stems)))


def _exact_copy(aid: SearchAid, item: _Question, platform: Platform) -> str:
    """Why `aid`, equal to the question, is a leak ("" when it is not)."""
    if aid.field == "query":
        return "the question verbatim as an expansion query"
    if not item.near & set(aid.units):
        return ""
    if any(platform.unit_says(u, aid.text) for u in aid.units):
        return ""
    return f"the question verbatim as a {aid.field} of a unit it asks about, whose own text does not say it"


def _near_copy(aid: _Aid, item: _Question, platform: Platform) -> str:
    """Why the query is a near copy of the question ("" when it is not)."""
    left, right = " ".join(aid.stems), " ".join(item.stems)
    sort_ratio = fuzz.token_sort_ratio(left, right)
    if sort_ratio >= SAME_WORDS_RATIO:
        return f"the question's content words in another order (token-sort {sort_ratio:.0f})"
    set_ratio = fuzz.token_set_ratio(left, right)
    if sort_ratio < NEAR_COPY_SORT_RATIO and set_ratio < NEAR_COPY_SET_RATIO:
        return ""
    shared = [w for w in dict.fromkeys(item.words) if stem(w) in aid.stems]
    if len(shared) < 2 or len({stem(w) for w in shared}) < NEAR_COPY_COVER * len(set(item.stems)):
        return ""
    own = [w for w in shared if not is_everyday(w, item.question.lang) and not platform.uses_word(w)]
    if not own:
        return ""
    return (
        f"token-sort {sort_ratio:.0f}, token-set {set_ratio:.0f}: shares «{' '.join(shared)}», "
        f"and the platform never says «{' '.join(own)}»"
    )


def _shared_phrases(aid: _Aid, item: _Question, platform: Platform) -> list[str]:
    """Runs of content words the question and the aid share and the platform does not have, as the
    question words they are made of (longest first): a run of two needs a word that is neither
    everyday nor the platform's; a longer run is a copy unless every word is the platform's."""
    shared = item.runs & aid.runs
    found: list[str] = []
    for size in range(LONGEST_RUN, 1, -1) if shared else ():
        for start in range(len(item.stems) - size + 1):
            run = item.stems[start : start + size]
            if run not in shared or run in platform.phrases:
                continue
            surface = item.words[start : start + size]
            if size == 2 and all(is_everyday(w) or platform.uses_word(w) for w in surface):
                continue
            if size > 2 and all(platform.uses_stem(s) for s in run):
                continue
            text = " ".join(surface)
            if not any(text in longer for longer in found):
                found.append(text)
    return found


def _exact_copies(aids: Sequence[_Aid], questions: Sequence[_Question], platform: Platform) -> Iterator[Finding]:
    by_text: dict[str, list[_Question]] = defaultdict(list)
    for item in questions:
        by_text[normalised(item.question.text)].append(item)
    for aid in aids:
        for item in by_text.get(normalised(aid.aid.text), []):
            why = _exact_copy(aid.aid, item, platform)
            if why:
                yield Finding("exact copy", aid.aid, item.question, why)


def _near_copies(aids: Sequence[_Aid], questions: Sequence[_Question], platform: Platform) -> Iterator[Finding]:
    # Only pairs sharing two content words can be near copies: an index of the questions' stems
    # finds them without scoring every query against every question.
    having: dict[str, set[int]] = defaultdict(set)
    for position, item in enumerate(questions):
        for word_stem in item.stems:
            having[word_stem].add(position)
    for aid in aids:
        if aid.aid.field != "query" or len(aid.stems) < 2:
            continue
        shared = Counter(position for word_stem in set(aid.stems) for position in having.get(word_stem, ()))
        for position in sorted(p for p, count in shared.items() if count >= 2):
            why = _near_copy(aid, questions[position], platform)
            if why:
                yield Finding("near copy", aid.aid, questions[position].question, why)


def _shared_phrase_copies(
    aids: Sequence[_Aid], questions: Sequence[_Question], platform: Platform
) -> Iterator[Finding]:
    asked_about: dict[str, list[_Question]] = defaultdict(list)
    for item in questions:
        # English words cannot be looked up in the Norwegian platform: every English phrase would
        # look like wording of its own. English questions are held to the other two rules.
        if item.question.lang != "en":
            for unit_id in item.near:
                asked_about[unit_id].append(item)
    for aid in aids:
        if len(aid.words) < 2:
            continue
        candidates = {id(item): item for unit_id in aid.aid.units for item in asked_about.get(unit_id, ())}
        for item in candidates.values():
            phrases = _shared_phrases(aid, item, platform)
            if phrases:
                where = "gold unit" if item.gold & set(aid.aid.units) else "gold unit's neighbour"
                quoted = ", ".join(f"«{p}»" for p in phrases)
                yield Finding(
                    "shared phrase",
                    aid.aid,
                    item.question,
                    f"shares {quoted} with a question about its {where}; the platform never says it",
                )


def find_leaks(questions: Sequence[EvalQuestion], aids: Sequence[SearchAid], platform: Platform) -> list[Finding]:
    """Every exact copy, near copy and shared phrase between the questions and the search aids,
    one finding (the most blatant) per aid and question, in file and line order."""
    prepared = [_prepare(q, platform) for q in questions]
    prepared_aids = [_prepare_aid(a) for a in aids]
    findings: dict[tuple[SearchAid, str], Finding] = {}
    for finding in chain(
        _exact_copies(prepared_aids, prepared, platform),
        _near_copies(prepared_aids, prepared, platform),
        _shared_phrase_copies(prepared_aids, prepared, platform),
    ):
        findings.setdefault((finding.aid, finding.question.id), finding)
    return sorted(findings.values(), key=lambda f: (f.aid.file, f.aid.line, f.aid.field, f.aid.text, f.question.id))


def _stem_all(tokens: Iterable[str]) -> list[str]:
    return [stem(w) for w in tokens]


# --- the unit-level statistic -------------------------------------------------------------------


@dataclass(frozen=True)
class ShareRow:
    """Of the words of a group's questions that the platform does not use, how many its gold units'
    expansions use."""

    split: str
    category: str
    questions: int
    non_platform_words: int
    in_expansions: int

    @property
    def share(self) -> float:
        return self.in_expansions / self.non_platform_words if self.non_platform_words else 0.0


def non_platform_word_share(
    questions: Sequence[EvalQuestion], aids: Sequence[SearchAid], platform: Platform
) -> list[ShareRow]:
    """Per split and category, and per split over all categories ("*"): the share of the answerable
    questions' non-platform words (content-word stems the platform text never uses) that appear in
    the expansions of their gold units. A share far above the dev split's on the test split means
    the expansions were written with the test questions in view."""
    expansion_stems: dict[str, set[str]] = defaultdict(set)
    for aid in aids:
        if aid.field != "theme name":
            expansion_stems[aid.owner].update(_stem_all(leak_words(aid.text)))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for question in questions:
        if not question.gold:
            continue
        gold = {platform.expanded_unit(g) for g in question.gold}
        gold_stems = set().union(*(expansion_stems[u] for u in gold))
        outside = {s for s in _stem_all(leak_words(question.text)) if not platform.uses_stem(s)}
        for key in ((question.split, question.category), (question.split, "*")):
            counts[key][0] += 1
            counts[key][1] += len(outside)
            counts[key][2] += len(outside & gold_stems)
    return [ShareRow(split, category, *counts[(split, category)]) for split, category in sorted(counts)]
