"""What a question is about as a whole: the scope its answer must cover.

Before an answer is composed, the question is resolved to one scope:

- `unit`: a specific fact or pledge («Vil byrådet innføre fritt brukervalg i hjemmetjenestene?»);
  the answer cites the best-ranked pledges, as a search would;
- `heading`: a section or sub-heading of the document («Hva vil byrådet gjøre med
  fastlegeordningen?»); the answer cites everything under it, its prose commitments included;
- `chapter`: one of the chapters or the introduction («Oppsummer kapittelet om oppvekst»);
- `theme`: a group, place or policy area that cuts across chapters («Hva gjør byrådet for eldre?»),
  from the curated theme index (`corpus/themes/`), or the pledges that name a topic word for word;
- `document`: the platform itself («Hvem står bak plattformen?»);
- `attribute`: pledges with a figure, an amount, a date or deadline, or a named building project,
  optionally within a topic («Hvilke løfter har tidsfrister?», «hvilke tall har de om bolig?»);
- `none`: nothing the platform can answer (a request to make something up, another municipality);
- `chat`: small talk («hei», «takk», «hva kan du?»), answered with a welcome.

The knowledge this needs is data: the document tree (headings and chapters name themselves) and the
theme index (names in bokmål, nynorsk, English and everyday words, and the units that bear on each
theme). The word lists here are small and each sits next to the decision it serves.

A question is broad when the words it has beside the topic's name do not narrow the topic: «Hva
gjør byrådet for eldre i Trondheim?» asks about all of «eldre»; «Hva vil byrådet gjøre med
billettprisene på buss og trikk?» asks about the part of «kollektivtrafikk» that names prices. A
word narrows a topic when it names some of the topic's units but not all of them and is not a word
the whole platform uses everywhere («styrke», «sikre»).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from rapidfuzz.distance import Levenshtein
from wordfreq import zipf_frequency

from assistant.corpus import Corpus
from assistant.relevance import QueryWord, TermIndex
from assistant.text import content_terms, content_words, looks_english, stem, words
from assistant.types import Chunk, DocumentMeta, Unit

ScopeKind = Literal["unit", "heading", "chapter", "theme", "document", "attribute", "none", "chat"]
TopicKind = Literal["heading", "chapter", "theme"]
Attribute = Literal["figure", "amount", "percent", "date", "project"]

#: The theme whose units are the named building projects: the attribute «project» lists them.
PROJECT_THEME = "byggeprosjekter"
#: Words that name no topic beside others: "i byen" means Trondheim itself ("Kva vil byrådet gjere
#: for studentane i byen?" asks about students), and «alt byrådet lover for folk som sykler» asks
#: about cycling.
GENERIC_WORDS = frozenset({"byen", "byn", "folk"})
GENERIC_STEMS = frozenset(stem(w) for w in GENERIC_WORDS)
#: Verbs that carry no topic in a request's «om …» phrase: «alle løftene om å få ned sykefraværet»
#: asks about sick leave. (Left out of every question, «få» cost a dev answer: «… lære meg språket
#: og få meg en jobb».)
LIGHT_VERBS = frozenset({"få"})
#: A word used by more than this share of the platform's units («styrke», «sikre», «bedre») says
#: nothing about which part of a topic a question means.
COMMON_WORD_SHARE = 0.05
#: Short stems («ta», «gi») and everyday words («trenger», «hele») narrow nothing.
MIN_NARROWING_LENGTH = 3
#: … and a word only the search expansions use, this long (short ones are too often other words).
MIN_EXPANSION_WORD = 6
EVERYDAY_ZIPF = 5.0
FUNCTION_LIKE_ZIPF = 5.5
#: Words of the asking sentence that neither name nor narrow the topic: this many say the question
#: is about something more particular («Finnes det noe som bringer kulturen ut til de gamle der de
#: bor?»).
MAX_EXTRA_WORDS = 2
MAX_SCOPE_CITATIONS = 60
#: The introduction's units a document answer cites: those among this many best-ranked chunks.
DOCUMENT_RANK = 5
#: A request for a list gets the heading of its best-ranked chunks when this many agree on one
#: heading of at most `AGREEING_MAX` pledges (dev: 3 or 2 agreeing changed the same answer; with 2
#: and a cap of 30 «alle løftene om sykling» listed all of «Samferdsel», precision 0.935 → 0.923).
AGREEING_TOP = 3
AGREEING_MAX = 15


# --- what the question asks for (small word lists, each next to its decision) -------------------

_LIST_INTENT = re.compile(
    # «alle» asks for a list only of pledges or points: «alle løftene om …», not «alle elevene».
    r"\b(alle(?: de| dei| dæm| dokkers| dine)? "
    r"(?:løft\w*|punkt\w*|tiltak\w*|plan\w*|sak\w*|forslag\w*|ting\w*|kulepunkt\w*)|"
    r"samtlige|(?:hva|kva|ka) står det (?:i \w+ )?om|hva sier (?:erklæringen|plattformen|den|byrådet) om|"
    r"kva seier|ka sei(?:er)?|ta (?:med|me) (?:alt|alle)|oversikt|oversyn|oppsummer\w*|sammendrag|samandrag|"
    r"liste over|list opp|"
    r"løft(?:ene|er|ane|a) om|fortell? (?:meg |mæ )?om|(?:hva|kva|ka) står det under|list everything|list all|"
    r"liste opp|rams(?:e)? opp|les opp|det som står om|når det gjelder|angående|"
    r"under (?:punktet|punkta|overskrift\w*|kapit\w*|avsnitt\w*|delen)|"
    r"every (?:bullet )?point|list every\w*|all (?:the )?(?:bullet )?points|under the [\w ]{1,40} heading|"
    r"under the heading|"
    r"list(?:e|a)? alt|hele list(?:a|en)|lista over|listen over|\w{3,}(?:området|feltet|sektoren)|"
    r"(?:gi|gje|gjev) (?:meg|mæ|oss) alt|alt (?:om|som står om)|"
    r"alt (?:byrådet|dere|dokker|dokk|de|dæm|erklæringen|erklæringa|plattformen) \w+ om|"
    r"(?:can you |please )list (?:what|the)|"
    r"(?:står|finnes|fins|finst|er) det (?:noe|noko|nå|nåkka|noen|nokon) (?:om|for|i \w+ (?:om|for|som gjeld\w*))|"
    r"fullstendig|komplett|full picture|complete (?:list|picture|overview)|hele bildet|"
    r"(?:does|do) (?:it|the platform|they|the council) (?:say|mention|promise) anything about|"
    r"all pledges|everything about|what does (?:it|the platform) say about|tell me about|summar\w+|overview)\b",
    re.IGNORECASE,
)
# "Hvor mange studenter …" asks for a number in the text, not for every pledge on students.
_QUANTITY = re.compile(
    r"\b(?:hvor|kor|how)\s+(?:mange|mang|mye|mykje|møkkje|many|much|stor|stort|store|høy|høyt|lang|langt)\b"
    r"|\bhva\s+(?:koster|kostar|skal\s+\w+\s+koste)\b|\bwhat\s+(?:will\s+\w+\s+)?cost"
    r"|\b(?:by )?(?:what|how many) (?:percentage|per cent|percent|share)\b|\bby how much\b"
    r"|\bhvor (?:mange|stor) prosent\b"
    r"|\b(?:hvor|kor) (?:lang tid|lenge|raskt|fort|ofte)\b|\bhow (?:long|soon|fast|often)\b",
    re.IGNORECASE,
)
# "Når skal ishallen stå ferdig?": a date or deadline in the text.
_WHEN = re.compile(
    r"(?:^|[.!?]\s+)(?:når|innen når|kva tid|ka tid|kor tid)\b[^.!?]*\?|\b(?:hvilket år|kva år|what year|by when)\b|"
    r"(?:^|[.!?]\s+)when (?:will|is|does|do|are|can)\b",
    re.IGNORECASE,
)
# "Bare finn på et tall", "gi meg ditt beste anslag", "dikt opp et nytt punkt": a request for a
# figure or pledge the platform does not have. A request for the assistant's opinion is not one:
# it often comes with a real question ("hva har byrådet lovet om eiendomsskatten – og synes du …?")
# whose answer the platform has.
_INVENTION = re.compile(
    r"\b(?:finn(?:e)? på|dikt(?:e|a)? opp|gjett\w*|ditt (?:beste )?anslag|"
    r"make (?:something|one|it|things|stuff|numbers) up|make up (?:a |an |some |new )?"
    r"(?:number|figure|pledge|promise|answer|estimate)s?|invent\w*|guess\w*)\b",
    re.IGNORECASE,
)
#: A request for pledges with a property: «Hvilke løfter har tall eller tidsfrister?», «hvilke
#: konkrete byggeprosjekter …», «which pledges have a deadline?».
_ATTRIBUTE_WORDS: dict[Attribute, re.Pattern[str]] = {
    "figure": re.compile(
        r"\b(?:tall|tal|tala|talla|tallfest\w*|tallmål\w*|talmål\w*|måltall\w*|konkrete mål|numbers?|figures?)\b",
        re.IGNORECASE,
    ),
    "amount": re.compile(
        r"\b(?:beløp\w*|kronebeløp\w*|pengesummer|kroner|amounts?|sums? of money)\b",
        re.IGNORECASE,
    ),
    "percent": re.compile(r"\b(?:prosent\w*|percent\w*|percentages?|andel\w*)\b", re.IGNORECASE),
    "date": re.compile(
        r"\b(?:tidsfrist\w*|frist(?:er|ar|a|ene|ane)?|årstall\w*|dato\w*|tidsplan\w*|deadlines?|dates?|"
        r"timelines?|år de skal)\b",
        re.IGNORECASE,
    ),
    "project": re.compile(
        r"\b(?:byggeprosjekt\w*|byggjeprosjekt\w*|anleggsprosjekt\w*|bygg og anlegg|"
        r"(?:building|construction) projects?|(?:skal|vil|blir) (?:\w+ )?(?:bygges|byggjast|bygd)|"
        r"(?:be|get) built)\b",
        re.IGNORECASE,
    ),
}
#: The attribute words are a request for a list of pledges only when something asks for one:
#: «hvilke …», «list …», «løfter med …», «which …».
_ATTRIBUTE_REQUEST = re.compile(
    r"\b(?:hvilke|hvilket|kva for|kva|ka for|ka|which|what|list\w*|alle|løft\w+ med|løft\w+ som har|"
    r"pledges with|oversikt|gi meg|gje meg|noen|nokon|nån|any|nevnes|nemnast|finnes|finst|fins)\b",
    re.IGNORECASE,
)
#: What the text says when a unit carries a figure, an amount or a date.
_FIGURE_IN_TEXT = re.compile(
    r"\d|\b(?:to|tre|fire|fem|seks|sju|syv|åtte|ti|tolv|femten|tjue|hundre|tusen|dobbelt|halvparten)\b|"
    r"\b(?:en|ei|ett|et) (?:uke|dag|måned|år|time|gang)\b",
    re.IGNORECASE,
)
_AMOUNT_IN_TEXT = re.compile(r"\bkr\b|kroner|millioner|milliarder", re.IGNORECASE)
_PERCENT_IN_TEXT = re.compile(r"prosent|%", re.IGNORECASE)
_DATE_IN_TEXT = re.compile(
    r"\b(?:19|20)\d\d\b|\b(?:innen|i løpet av|før|fram mot) (?:utgangen av |neste |denne |)"
    r"(?:perioden|byrådsperioden|året|år|\d)",
    re.IGNORECASE,
)
#: A question about a chapter names it with one of these («kapittelet om …», «miljødelen»).
_CHAPTER_WORD = re.compile(
    r"\b(?:kapit\w*|chapter\w*|\w{3,}delen|\w{3,}kapitlet|\w{3,}kapittelet|delen (?:om|med|som)|del(?:en)? av "
    r"(?:erklæringen|plattformen|dokumentet))\b",
    re.IGNORECASE,
)
_CHAPTER_SUFFIX = re.compile(r"(\w{3,}?)(?:delen|kapitlet|kapittelet)$")
#: Words about the platform itself: who is behind it, its period, what it is, its main lines.
DOCUMENT_WORDS = frozenset(
    stem(w)
    for w in """
    bak parti partier partia partiene partiane sitter sit styrer styre består sammensatt samarbeid
    samarbeider periode perioden lenge år årene gjelder hovedprioriteringer hovedprioriteringene
    prioriteringer prioriteringene prioritert viktigste viktigst hovedpunkter hovedpunktene hovudpunkta
    hovedlinjer hovedsaker hovudsakene mål målene visjon visjonen innhold innholdet kapitler kapitlene
    kapitla tema temaer handler dokument dokumentet grunnlag grunnlaget politiske politikk med leder
    leiar behind parties party period document declaration platform about main priorities chapters
    who governs government goals vision content contents what make makes up according kind type sort
    program valprogram partiprogram slags type eigentleg egentlig høyre mdg venstre arbeiderpartiet ap
    frp fremskrittspartiet sv sp senterpartiet krf rødt raudt miljøpartiet grønne this these which
    policy areas cover covers key issues topics written wrote author laget lagd skrevet snakk gjeld dreier
    sak saker sakene sakan hatt historie
    """.split()
)
#: Small talk: a greeting, thanks, or a question about the assistant itself.
_SMALL_TALK = re.compile(
    r"^\W*(?:hei(?: hei)?|hallo|heisann|hey|hi|hello|god (?:morgen|dag|kveld)|morn|takk(?: skal du ha)?|"
    r"tusen takk|mange takk|takk for hjelpen|thanks?(?: you)?|ok(?:ay)?|flott|supert?|"
    r"(?:hva|kva|ka) kan du(?: hjelpe (?:meg|mæ) med)?|(?:hvem|kven|kem) er du|hva er du|what can you do|"
    r"who are you|hjelp|help|hvordan (?:bruker jeg|virker) (?:deg|dette|du))\W*$",
    re.IGNORECASE,
)
#: Municipalities a question may ask about instead of Trondheim; one the platform names itself
#: (Klæbu, Malvik …) is not another municipality.
OTHER_MUNICIPALITIES = frozenset(
    """
    oslo bergen stavanger bærum kristiansand drammen asker lillestrøm fredrikstad sandnes tromsø
    sarpsborg skien ålesund bodø larvik tønsberg arendal karmøy haugesund sandefjord porsgrunn
    moss halden molde lillehammer gjøvik hamar harstad kongsberg steinkjer levanger stjørdal melhus
    skaun orkland malvik verdal namsos røros oppdal göteborg stockholm københavn
    """.split()
)
#: How a question makes another municipality its subject: «Oslo kommunes budsjett», «Hva vil
#: Bergen gjøre …», «byrådet i Bergen». Where someone lives or comes from is not the subject.
_MUNICIPALITY_SUBJECT = re.compile(
    r"\b([A-ZÆØÅ][a-zæøå]+?)s?\s+(?:kommunes?|bystyre|byråd)\b|"
    r"\b(?i:kommunen|byrådet|bystyret|ordføreren|politikerne) i ([A-ZÆØÅ][a-zæøå]+)\b|"
    r"\b(?i:hva|kva|ka|what|how) (?i:vil|skal|gjør|gjer|lovar|lover|planlegger|will|does|is|are) "
    r"([A-ZÆØÅ][a-zæøå]+)\b"
)


@lru_cache(maxsize=20_000)
def is_function_like(word: str) -> bool:
    """Whether a word is among the very commonest of written Norwegian («være», «ha», «sånn»)."""
    return zipf_frequency(word, "nb") >= FUNCTION_LIKE_ZIPF


@lru_cache(maxsize=20_000)
def is_everyday(word: str) -> bool:
    """Whether a word is one of the most common of written Norwegian («trenger», «hele»)."""
    return zipf_frequency(word, "nb") >= EVERYDAY_ZIPF


def asks_for_list(question: str) -> bool:
    return bool(_LIST_INTENT.search(question))


def asks_quantity(question: str) -> bool:
    return bool(_QUANTITY.search(question))


def asks_for_invention(question: str) -> bool:
    """Whether the question asks the assistant to make up a figure or a pledge."""
    return bool(_INVENTION.search(question))


def is_small_talk(question: str) -> bool:
    return bool(_SMALL_TALK.match(question.strip()))


def asked_detail(question: str) -> Attribute | None:
    """The detail a question for a number or a date asks the text for, if it asks for one."""
    if asks_quantity(question):
        return "figure"
    return "date" if _WHEN.search(question) else None


def unit_attributes(text: str) -> frozenset[Attribute]:
    """What a unit's text carries: a figure, an amount of money, a percentage, a date or deadline."""
    found: set[Attribute] = set()
    if _FIGURE_IN_TEXT.search(text):
        found.add("figure")
    if _AMOUNT_IN_TEXT.search(text):
        found.update(("amount", "figure"))
    if _PERCENT_IN_TEXT.search(text):
        found.update(("percent", "figure"))
    if _DATE_IN_TEXT.search(text):
        found.add("date")
    return frozenset(found)


# --- the catalogue: headings, chapters, themes -----------------------------------------------


@dataclass(frozen=True)
class Topic:
    """Something a question may be about as a whole: a heading, a chapter or a theme."""

    kind: TopicKind
    key: str
    name: str
    #: The units it covers, in document order (pledges, prose commitments, for themes also passages).
    units: tuple[str, ...]
    #: Themes: what people call it; headings and chapters are named by their titles.
    names: tuple[str, ...] = ()
    #: Themes: the headings wholly about the theme; chapters: their headings, in order.
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str = ""
    #: What the answer covers, in document order (heading, chapter, theme, attribute, document).
    units: tuple[str, ...] = ()
    topics: tuple[Topic, ...] = ()
    #: Named in the question's own words (a heading, a theme …): answered without the
    #: answerability threshold, which is for questions matched by ranking alone.
    named: bool = True
    attributes: frozenset[Attribute] = frozenset()
    #: For `none`: why nothing can be answered.
    reason: str = ""


UNIT_SCOPE = Scope("unit", named=False)


def heading_key(unit: Unit, *, whole_section: bool = False) -> str:
    """«Chapter › Section › Sub-heading», or «Chapter › Section» for the section as a whole."""
    return unit.location if whole_section or not unit.subheading else unit.heading_path


def group_key(unit: Unit) -> str:
    """The pledge group a unit belongs to in a chapter summary: its sub-heading, or for a pledge
    directly under a section (before any sub-heading), the section."""
    return unit.heading_path


def _heading_title(key: str) -> str:
    return key.rsplit(" › ", 1)[-1]


class Catalogue:
    """The document's structure and the theme index, as topics a question may name.

    Pure: built from the corpus and the index's chunks (and their vectors, for which pledges are
    most central to a heading)."""

    def __init__(self, corpus: Corpus, chunks: Sequence[Chunk], vectors: np.ndarray | None = None) -> None:
        self.meta: DocumentMeta | None = corpus.documents[0].meta if corpus.documents else None
        citable = corpus.citable
        self.units: dict[str, Unit] = {u.id: u for u in citable}
        self.order = self._document_order(corpus)
        self._chunk_of: dict[str, Chunk] = {}
        for chunk in chunks:
            self._chunk_of.setdefault(chunk.unit_id, chunk)
        self.positions: dict[str, int] = {}
        for position, chunk in enumerate(chunks):
            self.positions.setdefault(chunk.unit_id, position)
        self.attributes = {u.id: unit_attributes(u.text) for u in citable}
        self.headings = self._headings(corpus)
        self.groups = self._groups(corpus)
        self.chapters = self._chapters(corpus)
        by_key = {t.key: t for t in self.headings}
        themes = []
        for theme in corpus.themes:
            # The headings wholly about a theme come first («eldre»: «Flere eldre innbyggere»), then
            # the theme's units elsewhere, each part in document order.
            heading_units = self.in_order(u for h in theme.headings if h in by_key for u in by_key[h].units)
            others = self.in_order(u for u in theme.units if u not in heading_units)
            themes.append(
                Topic("theme", theme.id, theme.name, heading_units + others, (theme.name, *theme.names), theme.headings)
            )
        self.themes = tuple(themes)
        self.central = self._central(vectors)

    @staticmethod
    def _document_order(corpus: Corpus) -> dict[str, int]:
        """Units in reading order, each commitment sentence right after its passage."""
        after: dict[str, list[Unit]] = {}
        for statement in corpus.statements:
            after.setdefault(statement.parent or "", []).append(statement)
        order: dict[str, int] = {}
        for unit in corpus.units:
            order[unit.id] = len(order)
            for statement in after.get(unit.id, ()):
                order[statement.id] = len(order)
        return order

    def in_order(self, unit_ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(unit_ids), key=lambda u: self.order.get(u, len(self.order))))

    def _headings(self, corpus: Corpus) -> tuple[Topic, ...]:
        """Every section, and every sub-heading, with its pledges and the commitments of its prose."""
        members: dict[str, list[str]] = {}
        for unit in corpus.citable:
            if unit.kind == "passage":
                continue
            keys = {heading_key(unit, whole_section=True), heading_key(unit)}
            for key in keys:
                members.setdefault(key, []).append(unit.id)
        return tuple(
            Topic("heading", key, _heading_title(key), self.in_order(ids))
            for key, ids in members.items()
            if any(self.units[u].kind == "pledge" for u in ids)
        )

    def _chapters(self, corpus: Corpus) -> tuple[Topic, ...]:
        """Each chapter, its `headings` being its pledge groups in order: the pledges a section has
        before its first sub-heading, then each sub-heading (see `group_key`)."""
        chapters: dict[str, list[str]] = {}
        groups: dict[str, list[str]] = {}
        for unit in corpus.citable:
            chapters.setdefault(unit.chapter, []).append(unit.id)
            if unit.kind == "pledge":
                groups.setdefault(unit.chapter, [])
                if group_key(unit) not in groups[unit.chapter]:
                    groups[unit.chapter].append(group_key(unit))
        return tuple(
            Topic("chapter", title, title, self.in_order(ids), headings=tuple(groups.get(title, ())))
            for title, ids in chapters.items()
        )

    def _groups(self, corpus: Corpus) -> dict[str, tuple[str, ...]]:
        """The pledges of each group (see `group_key`), in document order."""
        groups: dict[str, list[str]] = {}
        for unit in corpus.pledges:
            groups.setdefault(group_key(unit), []).append(unit.id)
        return {key: tuple(ids) for key, ids in groups.items()}

    def _central(self, vectors: np.ndarray | None) -> dict[str, tuple[str, ...]]:
        """Per pledge group, its pledges from the most to the least central (nearest the group's
        mean embedding): what a chapter summary cites first."""
        central: dict[str, tuple[str, ...]] = {}
        for key, pledges in self.groups.items():
            rows = [self.positions[u] for u in pledges if u in self.positions]
            if vectors is None or len(rows) != len(pledges) or not rows:
                central[key] = pledges
                continue
            block = vectors[rows]
            closeness = block @ block.mean(axis=0)
            central[key] = tuple(pledges[i] for i in np.argsort(-closeness, kind="stable"))
        return central

    def heading(self, key: str) -> Topic | None:
        return next((t for t in self.headings if t.key == key), None)

    def chunk(self, unit_id: str) -> Chunk:
        """The chunk that stands for a unit in an answer; a commitment sentence (not indexed on its
        own) gets one made from its text."""
        if unit_id in self._chunk_of:
            return self._chunk_of[unit_id]
        unit = self.units[unit_id]
        return Chunk(
            id=unit.id,
            unit_id=unit.id,
            kind=unit.kind,
            text=unit.text,
            retrieval_text=f"{unit.heading_path}: {unit.text}",
            chapter=unit.chapter,
            section=unit.section,
            subheading=unit.subheading,
            doc_id=unit.doc_id,
            number=unit.number,
            n_tokens=0,
        )


# --- naming: which topics a question names -----------------------------------------------------


@dataclass(frozen=True)
class QuestionWord:
    word: str
    #: The plain stem, and the stem the term index reads it as (typos and dialect corrected).
    raw: str
    stem: str
    #: Every stem the word may stand for: those two, and a Trøndersk plural's bokmål form
    #: («bussan», «ungdomman» → «bussene», «ungdommene»).
    forms: frozenset[str] = frozenset()


def question_words(question: str, terms: TermIndex) -> list[QuestionWord]:
    seen: dict[str, QuestionWord] = {}
    for word in content_words(question, drop_question_words=True):
        if "-" in word:
            continue  # «BoA-tjenesten»: its parts come as words of their own
        corrected = terms.word_stem(word)
        forms = {stem(word), corrected}
        if word.endswith("an") and len(word) > 4:
            forms.add(stem(word[:-2] + "ene"))
        seen.setdefault(corrected, QuestionWord(word, stem(word), corrected, frozenset(forms)))
    return list(seen.values())


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
    query: Sequence[QueryWord], title_terms: frozenset[str], optional: frozenset[str] = frozenset()
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


#: "barnehageområdet", "helsefeltet", "skolesektoren", «boligsituasjonen», «eldrepolitikken»: a
#: field named by its first part.
_FIELD_WORDS = ("områd", "felt", "sektor", "situasjon", "politikk", "tilbud", "satsing", "sak", "spørsmål")


def _field_of(word: str, name_word: str) -> bool:
    """«boligsituasjonen», «eldrepolitikken», «skoleområdet»: a field named by a word and a field
    word (compared unstemmed: Snowball cuts «bolig» to "bol")."""
    if len(name_word) < 4 or not word.startswith(name_word):
        return False
    rest = word[len(name_word) :]
    return any(stem(tail) in _FIELD_WORDS for tail in (rest, rest[1:] if rest[:1] in ("s", "e", "-") else ""))


def _names_a_field(stem: str, term: str) -> bool:
    rest = stem[len(term) :] if len(term) >= 4 and stem.startswith(term) else ""
    return rest in _FIELD_WORDS or (rest[:1] in ("s", "e", "-") and rest[1:] in _FIELD_WORDS)


#: One letter may differ per this many letters of a word: shorter words stay exact (one letter
#: turns "skole" into "skale", "barn" into "barm"); nynorsk "skulehelsetenest" names
#: "skolehelsetjenest" (17 letters, two off).
NEAR_WORD_FROM = 8


def _near_title_word(stem: str, term: str) -> bool:
    allowed = len(term) // NEAR_WORD_FROM
    return allowed > 0 and Levenshtein.distance(stem, term, score_cutoff=allowed) <= allowed


def _heading_words(query: Sequence[QueryWord], title: str) -> set[str] | None:
    """The question's stems that name a heading title, or None when the title is not named."""
    title_terms = _title_terms(title)
    acronyms = _title_acronyms(title)
    if any(w.stem in acronyms for w in query):
        return {w.stem for w in query if w.stem in acronyms or w.stem in title_terms}
    if _title_match(query, title_terms, _elided_terms(title)) is None:
        return None
    return {
        w.stem
        for w in query
        if any(
            w.stem == t or t.startswith(w.stem) or _near_title_word(w.stem, t) or _names_a_field(w.stem, t)
            for t in title_terms
        )
    }


def _name_words(name: str, words_: Sequence[QuestionWord]) -> set[str] | None:
    """The question's stems that name every word of a theme name, or None. A name of words that
    name nothing on their own («i byen») or that name the document («platform») names no theme."""
    used: set[str] = set()
    terms_ = [t for t in content_terms(name, drop_question_words=True) if t not in GENERIC_STEMS]
    if not terms_ or all(t in DOCUMENT_WORDS for t in terms_):
        return None
    name_words = [w for w in words(name) if stem(w) in terms_]
    for term in terms_:
        plain = next((w for w in name_words if stem(w) == term), term)
        hit = next(
            (
                w.stem
                for w in words_
                if term in w.forms
                or _near_title_word(w.raw, term)
                or _near_title_word(w.stem, term)
                or _field_of(w.word, plain)
            ),
            None,
        )
        if hit is None:
            return None
        used.add(hit)
    return used or None


@dataclass(frozen=True)
class Named:
    topic: Topic
    #: The question's stems that name it.
    words: frozenset[str]
    #: Each name the question uses, with the stems that name it.
    labels: tuple[tuple[str, frozenset[str]], ...]
    #: Exact title words, title size: the most specific heading wins among those named by the same words.
    rank: tuple[int, int] = (0, 0)


def named_topics(question: str, catalogue: Catalogue, terms: TermIndex) -> list[Named]:
    """Headings and themes the question names, the most specific naming kept: a topic named by
    fewer of the same words gives way («psykisk helse» is not «helse»), and of a heading and a theme
    named by the same words the heading is meant: the document's own structure («Barnehage»)."""
    query = terms.query_words(question)
    words_ = question_words(question, terms)
    found: list[Named] = []
    for topic in catalogue.headings:
        title = _heading_title(topic.key)
        used = _heading_words(query, title)
        if used:
            rank = _title_match(query, _title_terms(title), _elided_terms(title)) or (len(used), len(used))
            found.append(Named(topic, frozenset(used), ((title, frozenset(used)),), rank))
    for topic in catalogue.themes:
        # Every name the question uses counts: «kirke, religion og livssyn» names one theme thrice.
        matched = tuple((name, frozenset(used)) for name in topic.names if (used := _name_words(name, words_)))
        if matched:
            used_all = frozenset().union(*(used for _, used in matched))
            found.append(Named(topic, used_all, matched, (len(used_all), len(used_all))))
    return [n for n in found if not any(_gives_way(n, other) for other in found if other is not n)]


def _gives_way(named: Named, other: Named) -> bool:
    """Whether `named` is a lesser reading of the question's words than `other`: fewer of the same
    words; or the same words, and `other` is the heading they name exactly (the document's own
    structure: «barnehage» is «Barnehage»), or the theme they name where a heading is only begun
    («kultur» is «Kultur», not «Kulturbyen»), or the heading named more exactly."""
    if named.words < other.words:
        return True
    if named.words != other.words:
        return False
    if named.topic.kind != other.topic.kind:
        heading = other if other.topic.kind == "heading" else named
        exact = heading.rank[0] == heading.rank[1]
        return (other.topic.kind == "heading") == exact
    return named.topic.kind == "heading" and other.rank > named.rank


# --- resolution ---------------------------------------------------------------------------------


def _other_municipality(question: str, terms: TermIndex) -> str | None:
    """A municipality other than Trondheim that the question is about, and the platform never names."""
    for owner, placed, acting in _MUNICIPALITY_SUBJECT.findall(question):
        name = str(owner or placed or acting).lower()
        # «X kommune» is a municipality whatever X is; «Hva vil X …» only for a known one («Høyre»).
        if name != "trondheim" and not terms.uses(name) and (owner or name in OTHER_MUNICIPALITIES):
            return name
    return None


def _requested_attributes(question: str) -> frozenset[Attribute]:
    if asks_quantity(question) or not _ATTRIBUTE_REQUEST.search(question):
        return frozenset()
    return frozenset(name for name, pattern in _ATTRIBUTE_WORDS.items() if pattern.search(question))


def _without(question: str, patterns: Iterable[re.Pattern[str]]) -> str:
    for pattern in patterns:
        question = pattern.sub(" ", question)
    return question


def resolve_scope(
    question: str,
    ranked: Sequence[int],
    chunks: Sequence[Chunk],
    terms: TermIndex,
    catalogue: Catalogue,
) -> Scope:
    """The scope of a question (see the module's docstring). `ranked` are the chunk positions of
    the best retrieval hits, best first."""
    if is_small_talk(question):
        return Scope("chat")
    if asks_for_invention(question):
        return Scope("none", reason="the question asks for a made-up figure or pledge")
    other = _other_municipality(question, terms)
    if other:
        return Scope("none", reason=f"the question is about another municipality ({other})")
    attributes = _requested_attributes(question)
    if attributes:
        return _attribute_scope(question, attributes, ranked, chunks, terms, catalogue)
    chapter = _chapter_scope(question, terms, catalogue)
    if chapter:
        return chapter
    if _about_the_document(question, terms):
        name = catalogue.meta.title if catalogue.meta else "dokumentet"
        intro = next((c for c in catalogue.chapters if c.key == catalogue_intro(catalogue)), None)
        units = intro.units if intro else ()
        # Of the introduction, what the question is about («Hvilke partier …?» is its first sentence).
        near = [chunks[i].unit_id for i in ranked[:DOCUMENT_RANK] if chunks[i].unit_id in units]
        return Scope("document", name, catalogue.in_order(near) if near else units)
    topical = _topic_scope(question, ranked, chunks, terms, catalogue)
    if topical:
        return topical
    lexical = _lexical_topic(question, chunks, terms)
    if lexical:
        units = catalogue.in_order(chunks[i].unit_id for i in lexical)
        return Scope("theme", _topic_phrase(question, terms), units, named=True)
    agreed = _heading_ranked_first(question, ranked, chunks)
    if agreed:
        topic = catalogue.heading(agreed)
        if topic:
            return Scope("heading", topic.name, topic.units, (topic,), named=False)
    return UNIT_SCOPE


def catalogue_intro(catalogue: Catalogue) -> str:
    """The key of the chapter before the first one (the preamble), or ''."""
    return catalogue.chapters[0].key if catalogue.chapters and not catalogue.chapters[0].headings else ""


def _about_the_document(question: str, terms: TermIndex) -> bool:
    """Nothing is left of the question but words about the platform itself («Hvem står bak
    plattformen?», «Hvem er med i byrådet?», «Hva er Leangen-erklæringen?»)."""
    stems = {stem(word) for word in content_words(question, drop_question_words=True)}
    return stems <= DOCUMENT_WORDS


def _chapter_scope(question: str, terms: TermIndex, catalogue: Catalogue) -> Scope | None:
    """A chapter the question names with a chapter word («kapittelet om miljø», «miljødelen»), or
    by its whole title in a request for a summary («oppsummer oppvekst og utdanning»)."""
    chapter_word = _CHAPTER_WORD.search(question)
    summary = asks_for_list(question)
    if not chapter_word and not summary:
        return None
    stems = {stem(word) for word in content_words(question, drop_question_words=True)}
    for word in content_words(question, drop_question_words=True):
        if match := _CHAPTER_SUFFIX.match(word):
            stems.add(stem(match[1]))
    stems |= {terms.word_stem(word) for word in content_words(question, drop_question_words=True)}
    scored: list[tuple[float, Topic]] = []
    for chapter in catalogue.chapters:
        title_terms = _title_terms(chapter.name)
        if not title_terms:
            continue
        named = {t for t in title_terms if any(s == t or (len(s) >= 4 and t.startswith(s)) for s in stems)}
        if not named:
            continue
        if not chapter_word and named != title_terms:
            continue
        scored.append((len(named) / len(title_terms) + len(named), chapter))
    if not scored:
        return None
    scored.sort(key=lambda pair: -pair[0])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None
    chapter = scored[0][1]
    title = _title_terms(chapter.name)
    if any(
        n.topic.kind == "heading" and n.topic.key.startswith(f"{chapter.key} › ") and not n.words <= title
        for n in named_topics(question, catalogue, terms)
    ):
        # «punktene under Natur- og klimatilpasning i byutviklingskapitlet» asks for the heading; in
        # «kapittelet om kultur, idrett og friluftsliv» the heading's words are the chapter's own.
        return None
    return Scope("chapter", chapter.name, chapter.units, (chapter,))


def _narrowing_words(
    residual: Iterable[QuestionWord],
    units: Sequence[str],
    catalogue: Catalogue,
    terms: TermIndex,
    *,
    english: bool = False,
) -> dict[str, set[str]] | None:
    """The residual words that pick out part of a topic: each names some of its units but not all,
    and is not a word the whole platform uses everywhere. None when a word names nothing in the
    topic but something elsewhere in the platform: the question is about more than the topic."""
    positions = [catalogue.positions.get(u) for u in units]
    narrowing: dict[str, set[str]] = {}
    for word in residual:
        if not word.word.isdigit() and (
            len(word.word) < MIN_NARROWING_LENGTH
            or terms.document_share(word.stem) > COMMON_WORD_SHARE
            or is_everyday(word.word)
        ):
            continue
        query_word = QueryWord(word.stem, (), 1.0)
        hits = {
            unit
            for unit, position in zip(units, positions, strict=True)
            if (position is not None and terms.matches(query_word, position, with_heading=False))
            or (position is None and word.stem in terms.text_terms(catalogue.units[unit].text))
        }
        if not hits and terms.document_share(word.stem) > 0:
            return None
        if not hits and len(word.word) >= MIN_EXPANSION_WORD and not english:
            # A word only the search expansions use («brukerom», as residents misspell it) still
            # tells which units it means.
            hits = {
                unit
                for unit, position in zip(units, positions, strict=True)
                if position is not None and terms.matches(query_word, position)
            }
        if hits and len(hits) < len(units):
            narrowing[word.stem] = hits
    return narrowing


def _coordinated(question: str, first: frozenset[str], second: frozenset[str], terms: TermIndex) -> bool:
    """Whether two topics are named as items of a list («eldre og studenter», «kultur, idrett»):
    then the answer covers each; otherwise one qualifies the other («eldre på Heimdal») and the
    answer covers what they share."""
    tokens = re.findall(r"\w+|,", question.lower())
    stems = [terms.word_stem(t) if t != "," else "," for t in tokens]
    a = [k for k, s in enumerate(stems) if s in first]
    b = [k for k, s in enumerate(stems) if s in second]
    if not a or not b:
        return False
    left, right = (max(a), min(b)) if max(a) < min(b) else (max(b), min(a))
    between = tokens[left + 1 : right]
    return bool(between) and all(t in (",", "og", "and", "eller", "or", "samt", "&") for t in between)


#: Words that frame a broad question without narrowing it («Hva har byrådet egentlig tenkt å gjøre
#: for eldre framover?»).
FRAME_WORDS = frozenset(
    stem(w)
    for w in """
    egentlig eigentleg konkret konkrete akkurat spesielt særlig generelt mer bedre nå no framover
    fremover fremtiden framtida framtiden planer planar noen noe nokon noko nån nåkka neste årene tenkt
    tenke tenkt planlagt gjort lovet lova betyr bety tilby tilbyr forvente vente lure lurer interessert
    generelt sånn slik delen del biten avsnittet avsnitt seksjonen seksjon part section heading oversikt
    oversyn samandrag sammendrag liste lista punkter punkta punktene summary list everything points
    """.split()
)
#: A yes/no question opens with its verb («Vil byrådet innføre …?», «Blir det …?», «Is the council
#: planning …?»), as does a why or who question: it asks about a measure, not about a topic as a
#: whole. («Står det noe om …?» asks for a list: see `asks_for_list`.)
_CLOSED_QUESTION = re.compile(
    r"^\W*(?:vil|skal|ska|blir|bli|bi|kommer|kjem|kjæm|får|bør|må|kan|er|e|har|finnes|fins|finst|står|"
    r"gjør|gjer|hjelper|is|will|are|can|should|would|does|do|has|have|"
    r"hvorfor|kvifor|korfor|koffor|why|hvem|kven|kem|who|stemmer|stemme)\b",
    re.IGNORECASE,
)
#: A text with no question in it and more words than a keyword search tells a situation («Det er
#: så mye bråk fra veien …»): answered from the ranking, like any specific question.
MAX_KEYWORD_WORDS = 4
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
#: A scope of fewer pledges than this is answered from the ranking, like any specific question.
MIN_BROAD_PLEDGES = 3


_ASKING_CLAUSE = re.compile(
    r",\s*((?:hva|kva|ka|hvordan|korleis|åssen|hvilke|kva for|what|how|which)\b[^,]*)$", re.IGNORECASE
)


def asking_part(question: str) -> str:
    """The sentences that ask (end in «?»), without the story around them, and of a sentence that
    tells before it asks («Jeg har to barn i barnehage på Heimdal, hva betyr plattformen for oss?»)
    only the asking clause; the whole text when nothing asks: «Mamma er 86 … Hva har byrådet tenkt
    å gjøre for eldre som henne?»."""
    sentences = [s.strip() for s in _SENTENCE.findall(question) if s.strip()]
    asking = [s for s in sentences if s.endswith("?")]
    if len(asking) == 1 and (clause := _ASKING_CLAUSE.search(asking[0])):
        return clause[1]
    return " ".join(asking) if asking else question


def is_closed_question(question: str) -> bool:
    """Whether every sentence that asks something is a yes/no question about a measure."""
    sentences = [s.strip() for s in _SENTENCE.findall(question) if s.strip()]
    asking = [s for s in sentences if s.endswith("?")] or sentences[-1:]
    return bool(asking) and all(_CLOSED_QUESTION.match(s) for s in asking)


def _members(named: Named) -> tuple[str, ...]:
    return named.topic.units


def topic_names(topics: Sequence[Topic]) -> str:
    """«eldre», «barnehage og Heimdal»: topic names as they read in a sentence (a theme's name is
    lower-cased where people write it so: «Eldre» → «eldre», «Heimdal» stays)."""
    names = [t.name[:1].lower() + t.name[1:] if t.name[:1].lower() + t.name[1:] in t.names else t.name for t in topics]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} og {names[-1]}"


def _combined(
    question: str,
    named: Sequence[Named],
    members: Sequence[tuple[str, ...]],
    catalogue: Catalogue,
    terms: TermIndex,
    *,
    each_if_apart: bool = False,
) -> tuple[str, ...]:
    """What several named topics cover together: each of them when they are named as a list («kultur
    og idrett»); otherwise what they share («eldre på Heimdal») or, when one lies mostly inside the
    other («BoA for folk med funksjonsnedsettelser»), the smaller one. Topics that share nothing
    are covered each (`each_if_apart`) when they are what someone told about their life before
    asking «hva betyr plattformen for oss?» («barn i barnehage på Heimdal»), else not at all: the
    platform has nothing on «fastlegeordningen i Midtbyen»."""
    if len(named) == 1:
        return members[0]
    if any(_coordinated(question, a.words, b.words, terms) for a, b in itertools.pairwise(named)):
        return catalogue.in_order(u for m in members for u in m)
    smallest = min(members, key=len)
    others = set().union(*(set(m) for m in members if m is not smallest))
    if len(set(smallest) & others) * 2 >= len(smallest):
        return smallest
    together = set(members[0]).intersection(*members[1:])
    if not together and each_if_apart and len(members) == 2:
        together = {u for m in members for u in m}
    return catalogue.in_order(together)


def _topic_scope(
    question: str, ranked: Sequence[int], chunks: Sequence[Chunk], terms: TermIndex, catalogue: Catalogue
) -> Scope | None:
    """A heading or theme the question is about as a whole: its asking sentences name the topic,
    and what else they say narrows it to no fewer than `MIN_BROAD_PLEDGES` pledges; or it asks
    for a list. The story around the question («Mamma er 86 …») is context, not topic."""
    listing = asks_for_list(question)
    story = "?" not in question and len(content_words(question, drop_question_words=True)) > MAX_KEYWORD_WORDS
    if asked_detail(question) or ((is_closed_question(question) or story) and not listing):
        return None
    # Only what the question asks names its topic: a story that asks «Gjør dere noe med det?» is
    # about its own situation, answered from the ranking.
    asking = asking_part(question)
    told = not [
        w
        for w in content_words(asking, drop_question_words=True)
        if stem(w) not in FRAME_WORDS and stem(w) not in DOCUMENT_WORDS
    ]
    if told:
        # «Jeg har ikke fastlege. Hva vil byrådet gjøre?»: a bare question asks about what was told.
        asking = question
    named = named_topics(asking, catalogue, terms)
    if not named:
        return None
    used = set().union(*(n.words for n in named))
    residual = [
        w
        for w in question_words(asking, terms)
        if w.stem not in used
        and w.raw not in used
        and w.word not in GENERIC_WORDS
        and w.stem not in DOCUMENT_WORDS
        and w.raw not in FRAME_WORDS
    ]
    if not listing and any(not terms.known(QueryWord(w.stem, (), 1.0)) for w in residual):
        return None  # it asks about something the platform may not have («overvåkingskameraer i Midtbyen»)
    topics = tuple(n.topic for n in named)
    units = _combined(question, named, [_members(n) for n in named], catalogue, terms, each_if_apart=told)
    covered = [t for t in topics if t.units == units]
    if len(covered) == 1:
        topics = (covered[0],)  # «BoA for folk med funksjonsnedsettelser» is «BoA»
    narrowing = _narrowing_words(residual, units, catalogue, terms, english=looks_english(question))
    if narrowing is None and not listing:
        return None
    narrowing = narrowing or {}
    extra = [w for w in residual if w.stem not in narrowing and not is_function_like(w.word)]
    if len(extra) >= MAX_EXTRA_WORDS and not listing:
        return None  # the question asks for something more particular than its topic
    name = topic_names(topics)
    if narrowing:
        units = catalogue.in_order(set.intersection(*narrowing.values()) or set().union(*narrowing.values()))
        name = f"{', '.join(w.word for w in residual if w.stem in narrowing)} innen {name}"
    kind: ScopeKind = "theme" if any(t.kind == "theme" for t in topics) or len(topics) > 1 else "heading"
    pledges = sum(1 for u in units if catalogue.units[u].kind == "pledge")
    # A topic named as a whole is answered whole, however small; a part of one (narrowed, shared by
    # two topics, named by one unit's subject) that comes down to one or two pledges is a specific
    # question, answered from the ranking.
    whole = len(topics) == 1 and not narrowing and units == topics[0].units
    if not units or (pledges < MIN_BROAD_PLEDGES and not listing and not whole):
        return None
    return Scope(kind, name, units[:MAX_SCOPE_CITATIONS], topics)


def _attribute_scope(
    question: str,
    attributes: frozenset[Attribute],
    ranked: Sequence[int],
    chunks: Sequence[Chunk],
    terms: TermIndex,
    catalogue: Catalogue,
) -> Scope:
    """Pledges with the asked property, within the topic the rest of the question names, if any."""
    rest = _without(question, _ATTRIBUTE_WORDS.values())
    # The topic is what the rest names, however it asks: «tal og prosentmål … i klima- og
    # miljøpolitikken», «hard numbers in the transport section».
    within = _chapter_scope(rest, terms, catalogue)
    named = named_topics(rest, catalogue, terms)
    if named and not within:
        units = _combined(rest, named, [n.topic.units for n in named], catalogue, terms)
        topics = tuple(n.topic for n in named)
        within = Scope("theme", topic_names(topics), units, topics) if units else None
    pool = within.units if within else catalogue.in_order(catalogue.units)
    wanted: set[str] = set()
    if "project" in attributes:
        projects = next((t for t in catalogue.themes if t.key == PROJECT_THEME), None)
        wanted |= set(projects.units if projects else ())
    text_attributes = attributes - {"project"}
    wanted |= {
        u
        for u in pool
        if catalogue.units[u].kind != "passage" and catalogue.attributes.get(u, frozenset()) & text_attributes
    }
    units = tuple(u for u in pool if u in wanted)
    labels = {
        "figure": "tall",
        "amount": "kronebeløp",
        "percent": "prosenter",
        "date": "tidsfrister",
        "project": "byggeprosjekter",
    }
    name = " og ".join(labels[a] for a in sorted(attributes))
    if within:
        name = f"{name} om {within.name}"
    return Scope("attribute", name, units[:MAX_SCOPE_CITATIONS], within.topics if within else (), attributes=attributes)


# --- requests for a list that name no catalogue topic ---------------------------------------------

#: What a request for a list names as its topic: "alle løftene om sykefravær", "hva står det om
#: Heimdal i byrådserklæringen?" (up to the end of the clause).
_TOPIC_PHRASE = re.compile(r"\b(?:om|about|angående)\s+([^?.!:;,–—(«»\"]+)", re.IGNORECASE)
#: After a topic phrase, the rest of a list: «…om ventetid, PPT og disse spesialtilbudene?».
_LIST_GOES_ON = re.compile(r",\s*[^,.?!:;–—]{1,40}?\s(?:og|eller|and|or)\s", re.IGNORECASE)


def _topic_phrase(question: str, terms: TermIndex) -> str:
    words_ = [w.word for w in question_words(question, terms) if w.word not in GENERIC_WORDS]
    return " ".join(words_[:4])


def _lexical_topic(question: str, chunks: Sequence[Chunk], terms: TermIndex) -> list[int] | None:
    """All pledges that name a topic word for word: "alle løfter om sykefravær", or a one-word
    topic several pledges name ("LHBTQ"). A question for a number ("Hvor mange studenter …") is not
    a request for a list.

    When no pledge has every word of a request for a list, the words after its "om" name the
    topic: in "Kan du sette opp en oversikt over alt byrådet lover om sykefravær? Jeg tenker både
    helse, skole og …" the topic is «sykefravær»."""
    query = terms.query_words(question)
    if len(query) > 1:
        query = [w for w in query if w.stem not in GENERIC_WORDS] or query
    listing = asks_for_list(question)
    if not query or asks_quantity(question) or (len(query) > 1 and not listing):
        return None
    positions = _pledges_with_all(query, chunks, terms)
    if len(query) == 1 and not listing and len(positions) < 2:
        return None
    if not positions and len(query) > 1:
        for match in _TOPIC_PHRASE.finditer(question):
            if _LIST_GOES_ON.match(question, match.end()):
                continue  # the first item of a list («om ventetid, PPT og spesialtilbudene»), not the topic
            focus = [w for w in terms.query_words(match.group(1)) if w.stem not in GENERIC_WORDS | LIGHT_VERBS]
            if focus and len(focus) < len(query) and len(found := _pledges_with_all(focus, chunks, terms)) >= 2:
                return found
    return positions or None


def _pledges_with_all(query: Sequence[QueryWord], chunks: Sequence[Chunk], terms: TermIndex) -> list[int]:
    return [
        i
        for i, chunk in enumerate(chunks)
        if chunk.kind == "pledge" and all(terms.matches(w, i, with_heading=False) for w in query)
    ]


def _heading_ranked_first(question: str, ranked: Sequence[int], chunks: Sequence[Chunk]) -> str | None:
    """The heading of the best-ranked chunks, for a request for a list that names no heading in its
    words: "Could you list everything in the platform's section on women's health?" (English names
    no Norwegian heading), «løfter på rus- og psykiatrifeltet». The `AGREEING_TOP` best chunks must
    all lie under one heading of at most `AGREEING_MAX` pledges: a larger heading («Samferdsel»,
    28) is more than such a request asks for."""
    if not ranked or not asks_for_list(question) or asks_quantity(question):
        return None
    keys = {_chunk_heading(chunks[i]) for i in ranked[:AGREEING_TOP]}
    if len(keys) != 1:
        return None
    key = keys.pop()
    size = sum(1 for c in chunks if c.kind == "pledge" and _chunk_heading(c) == key)
    return key if 2 <= size <= AGREEING_MAX else None


def _chunk_heading(chunk: Chunk) -> str:
    parts = [chunk.chapter, chunk.section, *([chunk.subheading] if chunk.subheading else [])]
    return " › ".join(parts)


def scope_json(scope: Scope) -> Mapping[str, str]:
    return {"kind": scope.kind, "name": scope.name}
