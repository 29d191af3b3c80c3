"""Norwegian text normalisation shared by BM25, the fake embedder and the answer composer."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_NORWEGIAN

# Words every question about the platform carries; they say nothing about the topic.
QUESTION_WORDS = frozenset(
    """
    byrådet byrådets byråd byrådet's erklæringen leangen leangen-erklæringen plattformen trondheim
    kommunen kommune gjøre gjere gjør gjer gjørr ka kå kor korsn åssen ke æ ikkje itj
    planer plan planlegger tenker mener sier står skriver gjelder angående ang ønsker
    løfte løfter lovet lover lova tiltak noe noko hei takk please what does will the council do
    about city of plans is are there any and or to for in on a an how why which who mention says
    fortell forklar skriv list liste oppsummer oppsummering punkt punkter punktene løftene ifølge per får
    står stå sies nevnt nevner nevnes dokumentet står erklæringa erklæring erklæringi dokkers dokker dokk sei seie seier
    byrådserklæringen byrådserklæringa byrådsplattformen kapittel kapitlet kapittelet kapitla uansett samtlige
    kulepunkt kulepunkter kulepunkta kulepunktene punkta overskrift overskriften overskrifta journalist
    alt alting
    """.split()
)
STOPWORDS = frozenset(STOPWORDS_NORWEGIAN) | frozenset(
    "jeg hvilke hvilken hvem hvor hva fins finnes finns kva kven korleis kvifor".split()
)
#: Abbreviations that end in a period but not a sentence ("St. Olavs hospital", "ca. halvparten").
ABBREVIATIONS = frozenset("st ca bl.a f.eks nr dvs jf mv osv kl pkt evt iht ift mht vs".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÆØÅ0-9«\"“])")
_TOKEN = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("norwegian")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return text.replace("’", "'").replace("”", '"').replace("“", '"')


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens; hyphenated words also yield their parts."""
    out: list[str] = []
    for raw in _TOKEN.findall(normalise(text)):
        # "37.000" and "37000" are the same number.
        token = raw.replace(".", "") if raw[0].isdigit() else raw
        out.append(token)
        if "-" in token:
            out.extend(p for p in token.split("-") if p)
    return out


_ENGLISH_FUNCTION_WORDS = frozenset(
    "the what will does is are about of how why which who council city there this that with be would should "
    "could any their they has have been".split()
)


def looks_english(text: str) -> bool:
    """Two or more English function words: lexical matching against Norwegian text cannot apply."""
    return sum(1 for word in words(text) if word in _ENGLISH_FUNCTION_WORDS) >= 2


_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")


def stem(word: str) -> str:
    """Snowball's stem, with the unstressed -el of a noun folded the way its inflected forms drop it.

    Snowball stems «sykkel» to "sykkel" but «sykler», «sykle» and «syklene» to "sykl" (likewise
    «regel»/«regler», «middel»/«midler»), so a question about «sykle» missed every «sykkel…» pledge.
    """
    stemmed = str(_stemmer().stemWord(word))
    if len(stemmed) >= 5 and stemmed.endswith("el") and stemmed[-3] in _CONSONANTS:
        head = stemmed[:-2]
        if head[-1] == head[-2]:
            head = head[:-1]
        return head + "l"
    return stemmed


def content_words(text: str, *, drop_question_words: bool = False) -> list[str]:
    """Words that carry content: stop words, single letters (and optionally question boilerplate) removed."""
    return [
        word
        for word in words(text)
        if word not in STOPWORDS
        and not (drop_question_words and word in QUESTION_WORDS)
        and (len(word) >= 2 or word.isdigit())
    ]


def content_terms(text: str, *, drop_question_words: bool = False) -> list[str]:
    """Stemmed content words."""
    return [stem(word) for word in content_words(text, drop_question_words=drop_question_words)]


class Decompounder:
    """Split Norwegian compounds into parts the corpus knows ("sykkelveinett" -> "sykkel", …).

    BM25 matches whole tokens only; a resident writes "sykkel" where the platform writes
    "sykkelparkeringsplasser". Parts are looked up in the corpus's own vocabulary.
    """

    def __init__(self, vocabulary: Iterable[str], min_part: int = 4) -> None:
        self._vocabulary = frozenset(w for w in vocabulary if len(w) >= min_part)
        self._min_part = min_part

    @lru_cache(maxsize=20_000)  # noqa: B019 - instances live as long as the index
    def parts(self, word: str) -> tuple[str, ...]:
        if len(word) < 2 * self._min_part or not word.isalpha():
            return ()
        found: list[str] = []
        for cut in range(self._min_part, len(word) - self._min_part + 1):
            head, tail = word[:cut], word[cut:]
            if head not in self._vocabulary:
                continue
            for linked_tail in (tail, tail[1:] if tail[:1] in ("s", "e") else ""):
                if len(linked_tail) >= self._min_part and (
                    linked_tail in self._vocabulary or stem(linked_tail) in self._vocabulary
                ):
                    found.extend([head, linked_tail])
                    break
            else:
                found.append(head)
        return tuple(dict.fromkeys(found))

    def terms(self, text: str, *, drop_question_words: bool = False) -> list[str]:
        """Stemmed content words, each followed by the stems of its compound parts."""
        terms: list[str] = []
        for word in content_words(text, drop_question_words=drop_question_words):
            terms.append(stem(word))
            terms.extend(stem(part) for part in self.parts(word))
        return terms


def corpus_vocabulary(texts: Iterable[str]) -> set[str]:
    return {w for text in texts for w in words(text) if w not in STOPWORDS and w.isalpha()}


def split_sentences(text: str) -> list[str]:
    """Sentences of a prose text, each a verbatim piece of it (abbreviations do not end one)."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if not piece.strip():
            continue
        previous_word = sentences[-1].rsplit(" ", 1)[-1].rstrip(".").lower() if sentences else ""
        if sentences and previous_word in ABBREVIATIONS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences
