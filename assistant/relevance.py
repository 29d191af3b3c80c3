"""Which retrieved chunks really bear on a question, and whether the platform answers it at all.

Dense cosine scores from e5-small are compressed (0.78–0.90 for every question), so a cosine
threshold cannot decide. Two signals that do carry information:

- how far the best chunk stands out from the question's own score distribution (a z-score:
  a question the platform answers has one or a few chunks far above the rest), and
- lexical coverage: the IDF-weighted share of the question's content words a chunk contains
  (compound-aware, so "sykkel" finds "sykkelveinett"; its headings and search-expansion words
  count, so "doktor" is covered by the fastlege pledge); words the platform never uses ("NATO",
  "Airbnb") weigh in the denominator and pull coverage down.

Answerability = z + w_a · coverage; a chunk's relevance for citing = cosine + w_c · coverage.
Weights and thresholds are fitted on the evaluation set's dev split (`python -m assistant
calibrate`) and stored in `assistant/calibration.json`.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from wordfreq import zipf_frequency

from assistant.nynorsk import bokmal_spelling
from assistant.text import Decompounder, content_words, stem
from assistant.types import Chunk

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
#: The shortest platform term an unknown, longer query term is read as (see `TermIndex.correct`).
MIN_EXTENDED_TERM = 8
#: A word at least this common in written Norwegian (Zipf scale: 3 is once per million words) is a
#: word, not a typo: «gravplass» is not a misspelt «gravemaskin», nor «anslag» a misspelt «avslag».
COMMON_WORD_ZIPF = 3.0


@lru_cache(maxsize=20_000)
def is_common_word(word: str) -> bool:
    """Whether `word` (lower-cased, as typed) is an everyday Norwegian word (wordfreq, bokmål)."""
    return zipf_frequency(word, "nb") >= COMMON_WORD_ZIPF


@dataclass(frozen=True)
class Calibration:
    answer_coverage_weight: float = 2.0
    answer_known_weight: float = 0.0
    answer_view_weight: float = 0.0
    threshold: float = 3.0
    cite_coverage_weight: float = 0.3
    margin: float = 0.05
    max_citations: int = 4
    passage_penalty: float = 0.03
    #: Answers with answerability below threshold + this margin say they are only the nearest.
    hedge_margin: float = 0.0
    #: A hedged answer (below threshold + hedge_margin) to a question whose meaning rests on words
    #: the platform never uses (its embedding moves at least this far, 1 - cosine, when they are
    #: left out) is refused instead; 0 turns the rule off.
    unknown_shift_min: float = 0.0
    #: A question whose embedding moves at least this far when those words are left out is refused
    #: however well its other words match («båten ut til Munkholmen», «ambulansen på Byneset»);
    #: 0 turns the rule off.
    unknown_shift_strong: float = 0.0
    fitted_on: str = "defaults"
    #: The embedding model the scores were fitted for ("" = any): cosines are model-specific.
    embedding_model: str = ""

    @classmethod
    def load(cls, path: Path = CALIBRATION_FILE, *, embedding_model: str | None = None) -> Calibration:
        """The fitted calibration, or the defaults when it was fitted for another embedding model."""
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        fitted = cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        if embedding_model is not None and fitted.embedding_model not in ("", embedding_model):
            return cls()
        return fitted

    def save(self, path: Path = CALIBRATION_FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class QueryWord:
    stem: str
    parts: tuple[str, ...]
    weight: float


class TermIndex:
    """Per-chunk term sets and IDF, for coverage and topic matching."""

    def __init__(self, chunks: list[Chunk], decompounder: Decompounder) -> None:
        self.decompounder = decompounder
        self.chunk_terms = [frozenset(decompounder.terms(c.text)) for c in chunks]
        self.heading_terms = [frozenset(decompounder.terms(_heading(c))) for c in chunks]
        self.expansion_terms = [frozenset(decompounder.terms(c.search_terms)) for c in chunks]
        df: Counter[str] = Counter()
        for terms in self.chunk_terms:
            df.update(terms)
        self._df = df
        # Headings count as vocabulary too: "fastleggeordningen" must find the section title; and
        # so do the search expansions' words ("legemangel"): the platform speaks of those topics.
        self._vocabulary = sorted(set(df).union(*self.heading_terms, *self.expansion_terms))
        self._known_terms = frozenset(self._vocabulary)
        self._n = max(len(chunks), 1)
        self.max_idf = math.log(1 + self._n)

    def idf(self, term: str) -> float:
        count = self._df.get(term, 0)
        if count == 0:
            return self.max_idf
        return math.log(1 + (self._n - count + 0.5) / (count + 0.5))

    def _begins_known_term(self, term: str) -> bool:
        """Whether some corpus term starts with `term` ("trikk" -> "trikkelinj"); binary search."""
        position = bisect.bisect_left(self._vocabulary, term)
        return position < len(self._vocabulary) and self._vocabulary[position].startswith(term)

    @lru_cache(maxsize=20_000)  # noqa: B019 - lives as long as the index
    def correct(self, term: str, *, common_word: bool = False) -> str:
        """The corpus term a misspelt or dialect query term most likely means ("barnhag" ->
        "barnehag", "skolan" -> "skol", "symjebasseng" -> "svømmebasseng").

        A term the corpus uses, or begins, is not a typo: "trikk" stays "trikk" (it begins
        "trikkelinjen") instead of becoming the nearby word "trekk". Nor is the stem of a
        `common_word` (see `is_common_word`): a real word the platform does not use names
        something the platform does not speak of, and reading it as a platform word a letter or
        two away would hide that.
        """
        # Trøndersk definite plurals end in -an where bokmål has -ene: "skolan", "bussan". Checked
        # against the platform's own words first (the expansions' Trøndersk questions use them too).
        if term.endswith("an") and term not in self._df and (bokmal := stem(term[:-2] + "ene")) in self._df:
            return bokmal
        # Nynorsk and dialect spellings of a platform word: «symjebasseng», «austsida» (see
        # `assistant.nynorsk`); a rewrite counts only when the platform uses its result.
        if term not in self._known_terms and not self._begins_known_term(term):
            bokmal = bokmal_spelling(term)
            if bokmal != term and (bokmal in self._known_terms or self._begins_known_term(bokmal)):
                return bokmal
        if (
            common_word
            or term in self._known_terms
            or len(term) < 5
            or not term.isalpha()
            or self._begins_known_term(term)
        ):
            return term
        match = process.extractOne(
            term, self._vocabulary, scorer=Levenshtein.distance, score_cutoff=1 if len(term) < 9 else 2
        )
        if match:
            return str(match[0])
        # A typo near the end can derail the stemmer: "Brundalsforbindelssen" stems to
        # "brundalsforbindelss", four letters from "brundalsforbind". A long platform term that
        # makes up most of the word is the word meant.
        shortest = max(MIN_EXTENDED_TERM, math.ceil(0.75 * len(term)))
        for end in range(len(term) - 1, shortest - 1, -1):
            if term[:end] in self._known_terms:
                return term[:end]
        return term

    def word_stem(self, word: str) -> str:
        """The corpus term a lower-cased query word stands for (its stem, corrected)."""
        return self.correct(stem(word), common_word=is_common_word(word))

    def query_words(self, question: str) -> list[QueryWord]:
        seen: dict[str, QueryWord] = {}
        for word in content_words(question, drop_question_words=True):
            word_stem = self.word_stem(word)
            if word_stem in seen:
                continue
            # Distinct stems: "brukerrom" splits as "bruker" and "bruk" (its tail "rom" is too short
            # to be a part), both "bruk"; counted twice they would pass for a two-part compound.
            parts = tuple(dict.fromkeys(stem(p) for p in self.decompounder.parts(word)))
            seen[word_stem] = QueryWord(word_stem, parts, self.idf(word_stem))
        return list(seen.values())

    def known(self, word: QueryWord) -> bool:
        """Whether the platform uses the word at all (itself, as a prefix, or its compound parts)."""
        if word.stem in self._known_terms or len(word.parts) >= 2:
            return True
        return len(word.stem) >= 5 and self._begins_known_term(word.stem)

    def without_unknown_words(self, question: str) -> str | None:
        """The question with the words the platform never uses left out, or None when it has none.

        "Vil byrådet styrke legevakta? Vi satt der i seks timer" → "Vil byrådet styrke ? Vi satt der
        i seks timer": what is left shows how much the question rests on the missing word.
        """
        unknown = {w.stem for w in self.query_words(question) if not self.known(w)}
        if not unknown:
            return None
        pieces = re.findall(r"\w+|\W+", question)
        return "".join(p for p in pieces if not (p[0].isalnum() and self.word_stem(p.lower()) in unknown))

    def uses(self, word: str) -> bool:
        """Whether the platform's own text or its headings use a (lower-cased) word."""
        return stem(word) in self._df or any(stem(word) in h for h in self.heading_terms)

    def document_share(self, term: str) -> float:
        """Share of the chunks whose text uses a term."""
        return self._df.get(term, 0) / self._n

    def text_terms(self, text: str) -> frozenset[str]:
        return frozenset(self.decompounder.terms(text))

    def known_share(self, query: list[QueryWord]) -> float:
        return sum(1 for w in query if self.known(w)) / len(query) if query else 0.0

    def matches(self, word: QueryWord, position: int, *, with_heading: bool = True) -> bool:
        terms = self.chunk_terms[position]
        if with_heading:
            terms = terms | self.heading_terms[position] | self.expansion_terms[position]
        if word.stem in terms:
            return True
        if len(word.stem) >= 4 and any(t.startswith(word.stem) for t in terms):
            return True
        # A compound the platform does not use is matched by its parts («sykkelveinett»); one it
        # uses is not: «fastlege» does not match «fast arbeidsgruppe» and «fastholdes».
        return len(word.parts) >= 2 and word.stem not in self._known_terms and all(p in terms for p in word.parts)

    def coverage(self, query: list[QueryWord], position: int) -> float:
        total = sum(w.weight for w in query)
        if total == 0:
            return 0.0
        return sum(w.weight for w in query if self.matches(w, position)) / total


def _heading(chunk: Chunk) -> str:
    return " ".join(p for p in (chunk.section, chunk.subheading or "") if p)


_FILLER = frozenset({"sånt", "sånn", "slikt", "mer", "more"})
_LIST_WORD = r"[^\W\d_][\w-]*"
_LIST_END = r"(?:og|eller|and|or|å|&|samt)"
#: A list of three or more single words in a question: «om buss, trikk og tog», «– språk, arbeid,
#: barnehage osv.», «– helse, kultur, idrett, veier».
_ENUMERATION = re.compile(
    rf"({_LIST_WORD})((?:\s*,\s*{_LIST_WORD})+)"
    rf"(?:\s*,?\s+{_LIST_END}\s+({_LIST_WORD})\b|\s*,?\s*(?:osv|etc|og sånn|og sånt|o\.l)\b\.?)"
    rf"|({_LIST_WORD})((?:\s*,\s*{_LIST_WORD}){{2,}})\s*(?=[.?!]|$)",
    re.IGNORECASE,
)
MAX_ASPECTS = 6


def aspect_questions(question: str) -> list[str]:
    """The question once for each item of a list it names, the list replaced by that item: «Hva lover
    byrådet om buss, trikk og tog?» → «Hva lover byrådet om buss?», «… om trikk?», «… om tog?».

    Someone who lists what they want covered expects an answer on each; the whole question's
    embedding lands on one of them. Filler («og sånt») and stop words are not items."""
    for match in _ENUMERATION.finditer(question):
        groups: tuple[str | None, ...] = match.group(1, 2, 3) if match.group(1) else (*match.group(4, 5), None)
        first, rest, last = (group or "" for group in groups)
        listed = [first, *(item.strip() for item in rest.split(",")), last]
        items = [item for item in listed if item and content_words(item) and item.lower() not in _FILLER]
        if len(items) < 3:
            continue
        head, tail = question[: match.start()], question[match.end() :]
        return [head + item + tail for item in dict.fromkeys(items)][:MAX_ASPECTS]
    return []
