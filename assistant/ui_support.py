"""Pure helpers behind the Streamlit app (`app.py`): everything that can be tested without a UI.

Markdown produced here is safe to pass to `st.markdown`: text from the corpus or the user is
escaped, so it never renders as HTML or Markdown markup. The only markup is our own: citation
markers as badges, bold chapter lines and bullets of the grouped answers, highlighting.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from assistant.composing import RELATED_INTRO, WELCOME
from assistant.core import Assistant
from assistant.corpus import Corpus
from assistant.errors import (
    AssistantError,
    ConfigError,
    CorpusError,
    IndexCorruptError,
    IndexMissingError,
    IndexStaleError,
    InvalidQuestionError,
    ModelUnavailableError,
)
from assistant.local_models import LocalModelMissingError
from assistant.local_server import LocalModelLoadError
from assistant.relevance import QueryWord, TermIndex
from assistant.settings import Settings
from assistant.text import looks_english
from assistant.types import Answer, Citation, Document, Hit, Unit

APP_TITLE = "Leangen-assistenten"
CHAT_PLACEHOLDER = "Still et spørsmål om Leangen-erklæringen …"
NEW_CHAT_LABEL = "Ny samtale"
RELATED_HEADING = "Relaterte løfter"
SOURCES_HEADING = "Kilder"
RELATED_NOTE = RELATED_INTRO
ABOUT_LABEL = "Om svaret"
LOADING_NOTE = "Gjør klar søket i erklæringen … Du kan skrive spørsmålet ditt allerede nå."
LOADING_SPINNER = "Gjør klar språkmodellen og søkeindeksen – svaret kommer straks …"
#: The first screen and the answer to small talk («hei», «hva kan du?») are the same welcome: the
#: answer stage's own words (`composing.WELCOME`), its example questions as buttons.
EXAMPLES_INTRO = "Prøv for eksempel"
#: Examples beyond those the welcome names.
EXTRA_EXAMPLES = ("Alle løfter om sykkel",)
#: The colour of citation markers; the source list uses the same badges.
MARKER_COLOR = "blue"
#: How many neighbours on each side a cited pledge is shown with.
CONTEXT_RADIUS = 2
#: Search in the pledge browser: when no pledge matches a word, show this many nearest ones.
SEARCH_FALLBACK = 10

# --- escaping --------------------------------------------------------------------------------

# Every ASCII punctuation character Markdown (or Streamlit's directives: `:red[…]`,
# `:material/icon:`, `$math$`) might read as syntax. CommonMark lets any of them be
# backslash-escaped, and an escaped character always renders as itself.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~$^=:")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


#: Invisible, and no line break: keeps `:material/icon:` from becoming an icon.
WORD_JOINER = "\u2060"


def escape_markdown(text: str) -> str:
    """Text that `st.markdown` shows literally: no HTML, no emphasis, links, lists or directives."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _HTML_ENTITIES:
            out.append(_HTML_ENTITIES[ch])
        elif ch in _MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
        # Streamlit reads icons (`:material/home:`) in the text after parsing, where escapes are
        # gone; an invisible joiner after a colon that precedes a letter keeps them literal.
        if ch == ":" and i + 1 < len(text) and text[i + 1].isalpha():
            out.append(WORD_JOINER)
    # Markdown would turn a single newline into a space and two into a paragraph; keep lines.
    return "  \n".join("".join(out).splitlines()) if "\n" in text or "\r" in text else "".join(out)


#: The page's own stylesheet (the only HTML the app writes): a cited or related source stays one
#: line until opened, cut with «…»; ids and citation strings wrap instead of widening a phone's page.
PAGE_STYLE = """<style>
[class*="st-key-sources-"] summary p, [class*="st-key-related-"] summary p {
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; margin: 0;
}
[class*="st-key-sources-"] summary, [class*="st-key-related-"] summary { min-width: 0; }
code { overflow-wrap: anywhere; word-break: break-word; white-space: pre-wrap; }
</style>"""


# --- the welcome -------------------------------------------------------------------------------


def welcome_parts(text: str = WELCOME) -> tuple[str, tuple[str, ...]]:
    """The welcome's prose, and the example questions it names («…» after «Prøv for eksempel»)."""
    intro, _, examples = text.partition(EXAMPLES_INTRO)
    return intro.strip(), tuple(re.findall(r"«([^»]+)»", examples))


EXAMPLE_QUESTIONS = tuple(dict.fromkeys((*welcome_parts()[1], *EXTRA_EXAMPLES)))


def welcome_markdown(text: str = WELCOME) -> str:
    """The welcome's prose as safe Markdown (its examples are shown as buttons)."""
    return escape_markdown(welcome_parts(text)[0])


# --- answers: markers, streaming, transparency -----------------------------------------------

_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")
#: A bold heading line of a composed answer, optionally with a count after it: «**Skole** (5 løfter)».
_BOLD_LINE = re.compile(r"\*\*(.+?)\*\*(?:\s+(\(.*\)))?")
MARKER = re.compile(r"\[(\d+)\]")


def marker_badge(n: int) -> str:
    """The visible citation marker, shared by the answer text and its numbered source list."""
    return f":{MARKER_COLOR}-badge[{n}]"


def render_markers(escaped: str) -> str:
    """Turn the (escaped) `[n]` markers of an answer into numbered badges."""
    return _ESCAPED_MARKER.sub(lambda m: marker_badge(int(m.group(1))), escaped)


def answer_markdown(text: str) -> str:
    """An answer as safe Markdown.

    The extractive composer writes plain sentences, or, for many citations, bold chapter lines
    and `- ` bullets. That structure is kept; every character of the quoted text is escaped;
    `[n]` markers become badges.
    """
    lines: list[str] = []
    for line in text.split("\n"):
        bold = _BOLD_LINE.fullmatch(line.strip())
        if bold:
            count = f" {escape_markdown(bold.group(2))}" if bold.group(2) else ""
            lines.append(f"**{escape_markdown(bold.group(1))}**{count}")
            continue
        prefix, body = ("- ", line[2:]) if line.startswith("- ") else ("", line)
        lines.append(prefix + render_markers(escape_markdown(body)))
    return "\n".join(lines)


_PIECE = re.compile(r"\*\*[^\n]*?\*\*[ \t]*\n*|:[a-z]+-badge\[\d+\][ \t]*\n*|\S+[ \t]*\n*|\s+")


def stream_pieces(markdown: str) -> list[str]:
    """Word-sized pieces for the typewriter effect; they join back to `markdown` exactly.

    Bold lines and badges stay whole, so no half-written markup flashes on screen.
    """
    return _PIECE.findall(markdown)


def stream_delay(n_pieces: int, *, per_piece: float = 0.01, total: float = 0.4) -> float:
    """Seconds between pieces: a brisk typewriter that never takes longer than `total`."""
    if n_pieces <= 0:
        return 0.0
    return min(per_piece, total / n_pieces)


def typewriter(pieces: Sequence[str], delay: float) -> Iterator[str]:
    """The generator `st.write_stream` consumes (the answer is already computed)."""
    for piece in pieces:
        yield piece
        if delay > 0:
            time.sleep(delay)


def format_ms(ms: float) -> str:
    """Norwegian milliseconds: «0,6 ms», «21 ms»."""
    if ms < 10:
        return f"{ms:.1f}".replace(".", ",") + " ms"
    return f"{ms:.0f} ms"


def transparency_caption(answer: Answer, title: str, corpus_sha256: str) -> str:
    """«Leangen-erklæringen · versjon 260b5063 · metode: extractive · søk 21 ms · svar 0,6 ms» (escaped).

    A generated answer shows the model's time («modell 850 ms»); an extractive fallback shows both.
    """
    timings = answer.timings_ms
    parts = [
        title,
        f"versjon {corpus_sha256[:8]}",
        f"metode: {answer.backend}",
        f"søk {format_ms(timings.get('retrieve', 0.0))}",
    ]
    if "model" in timings:
        parts.append(f"modell {format_ms(timings['model'])}")
    if "answer" in timings or "model" not in timings:
        parts.append(f"svar {format_ms(timings.get('answer', 0.0))}")
    return escape_markdown(" · ".join(parts))


def interpreted_as(answer: Answer) -> str | None:
    """The standalone question a follow-up was rewritten to, when it differs from what was typed."""
    standalone = " ".join(answer.standalone_question.split())
    if not standalone or standalone.casefold() == " ".join(answer.question.split()).casefold():
        return None
    return standalone


#: Above the Norwegian answer to an English question: why it is in Norwegian.
ENGLISH_LEAD = "The platform is written in Norwegian, so the answer quotes its own words in Norwegian."
ENGLISH_LEAD_REFUSED = "The platform does not cover this; the reply below is in Norwegian, the platform's language."


def english_lead(answer: Answer) -> str | None:
    """One English line above the answer to a question asked in English, or None."""
    if answer.decision == "chat" or not looks_english(answer.question):
        return None
    return ENGLISH_LEAD_REFUSED if answer.refused else ENGLISH_LEAD


def document_line(title: str, period: str) -> str:
    """What every answer is from, always visible (one line on a phone): «Kilde: Leangen-erklæringen (2024–2027)»."""
    return escape_markdown(f"Kilde: {title} ({period})" if period else f"Kilde: {title}")


#: How the answer was chosen, in words (see `Answer.decision`).
DECISION_WORDS = {
    "ranked": "løftene som passer best til spørsmålet",
    "nearest": "de nærmeste løftene; erklæringen svarer kanskje ikke direkte",
    "not_given": "de nærmeste løftene; erklæringen oppgir ikke det det ble spurt om",
    "heading": "alt under overskriften",
    "theme": "alt erklæringen har om temaet",
    "chapter": "de mest sentrale løftene i kapittelet",
    "document": "det erklæringen sier om seg selv",
    "attribute": "løftene med det det ble spurt etter",
    "refused": "ingenting: erklæringen ser ikke ut til å si noe om dette",
    "generated": "en språkmodells svar ut fra de nummererte kildene",
}


def about_answer(answer: Answer, corpus_sha256: str) -> list[str]:
    """The lines of «Om svaret» (escaped): how the answer was made, what it covers, version, timings."""
    if answer.backend == "extractive":
        method = "Svaret er satt sammen av sitater fra erklæringen, uten språkmodell (metode: extractive)."
    else:
        method = f"Svaret er skrevet av en språkmodell ut fra erklæringen (metode: {answer.backend})."
    lines = [method]
    chosen = DECISION_WORDS.get(answer.decision)
    if chosen:
        scope = f" «{answer.scope.name}»" if answer.scope.name and answer.scope.kind not in ("unit", "none") else ""
        lines.append(f"Utvalg: {chosen}{scope}.")
    timings = answer.timings_ms
    times = [f"søk {format_ms(timings.get('retrieve', 0.0))}"]
    if "model" in timings:
        times.append(f"modell {format_ms(timings['model'])}")
    if "answer" in timings or "model" not in timings:
        times.append(f"svar {format_ms(timings.get('answer', 0.0))}")
    lines.append(f"Korpusversjon {corpus_sha256[:8]} · {' · '.join(times)}")
    return [escape_markdown(line) for line in lines]


# --- broad answers in groups ----------------------------------------------------------------------

#: A composed list of this many cited points or more is shown in collapsible groups with counts.
GROUP_FROM = 5


@dataclass(frozen=True)
class AnswerBlock:
    """A bold heading line of a composed answer and the lines under it (title '' when none)."""

    title: str
    #: What the composer wrote after the heading: «(5 løfter)» in a chapter summary.
    note: str
    lines: tuple[str, ...]
    markers: tuple[int, ...]


@dataclass(frozen=True)
class AnswerGroup:
    """One collapsible group of a broad answer: a chapter, or a heading when all is in one chapter."""

    label: str  # safe Markdown
    markdown: str  # safe Markdown
    unit_ids: tuple[str, ...]


@dataclass(frozen=True)
class GroupedAnswer:
    lead: str  # safe Markdown
    #: Lines before the first heading when the groups are headings (a chapter's prose commitments).
    loose: str  # safe Markdown, may be ""
    groups: tuple[AnswerGroup, ...]


def _count_label(n: int, pledges_only: bool) -> str:
    if pledges_only:
        return f"{n} løfte" if n == 1 else f"{n} løfter"
    return _count_points(n)


def _blocks(lines: Sequence[str]) -> list[AnswerBlock]:
    blocks: list[AnswerBlock] = []
    title, note = "", ""
    body: list[str] = []
    for line in lines:
        bold = _BOLD_LINE.fullmatch(line.strip())
        if bold:
            if body or title:
                blocks.append(_block(title, note, body))
            title, note, body = bold.group(1), bold.group(2) or "", []
        elif line.strip():
            body.append(line)
    if body or title:
        blocks.append(_block(title, note, body))
    return blocks


def _block(title: str, note: str, body: Sequence[str]) -> AnswerBlock:
    markers = tuple(int(n) for line in body for n in MARKER.findall(line))
    return AnswerBlock(title, note, tuple(body), markers)


def group_answer(answer: Answer) -> GroupedAnswer | None:
    """A composed list answer (a heading, theme, chapter …, or many points) as a lead and groups:
    one per chapter, or one per heading when the answer lies in one chapter. None for an answer
    that is not such a list (sentences, a refusal, a generated answer, few points)."""
    if answer.refused or answer.decision in ("chat", "generated") or len(answer.citations) < GROUP_FROM:
        return None
    lines = answer.text.split("\n")
    first = next(
        (i for i, line in enumerate(lines) if line.startswith("- ") or _BOLD_LINE.fullmatch(line.strip())), None
    )
    if first is None:
        return None
    lead = "\n".join(lines[:first]).strip()
    by_marker = {c.n: c for c in answer.citations}
    blocks = _blocks(lines[first:])
    chapters: list[str] = []
    chapter_of: list[str] = []
    for block in blocks:
        cited = [by_marker[n] for n in block.markers if n in by_marker]
        chapter = cited[0].chunk.chapter if cited else (chapter_of[-1] if chapter_of else "")
        chapter_of.append(chapter)
        if chapter not in chapters:
            chapters.append(chapter)

    def citations_of(members: Sequence[AnswerBlock]) -> list[Citation]:
        return [by_marker[n] for b in members for n in b.markers if n in by_marker]

    def group(label: str, members: Sequence[AnswerBlock], *, titles: bool, note: str = "") -> AnswerGroup:
        cited = citations_of(members)
        count = note or f"· {_count_label(len(cited), all(c.chunk.kind == 'pledge' for c in cited))}"
        body: list[str] = []
        for member in members:
            if titles and member.title:
                body += ["", f"**{member.title.split(' › ', 1)[-1] if ' › ' in member.title else member.title}**"]
            body += list(member.lines)
        return AnswerGroup(
            f"**{escape_markdown(label)}** {escape_markdown(count)}",
            answer_markdown("\n".join(body).strip()),
            tuple(dict.fromkeys(c.chunk.unit_id for c in cited)),
        )

    if len(chapters) > 1:
        groups = [
            group(chapter, [b for b, c in zip(blocks, chapter_of, strict=True) if c == chapter], titles=True)
            for chapter in chapters
        ]
        return GroupedAnswer(answer_markdown(lead), "", tuple(groups))
    loose = [b for b in blocks if not b.title]
    titled = [b for b in blocks if b.title]
    if not titled:  # a list under one heading: the chapter is its group
        loose, titled = [], [_block(chapters[0], "", [line for b in blocks for line in b.lines])]
    groups = [
        group(b.title.split(" › ")[-1], [AnswerBlock("", "", b.lines, b.markers)], titles=False, note=b.note)
        for b in titled
    ]
    loose_markdown = answer_markdown("\n".join(line for b in loose for line in b.lines))
    return GroupedAnswer(answer_markdown(lead), loose_markdown, tuple(groups))


# --- citations and context ---------------------------------------------------------------------


class Located(Protocol):
    """What a unit (from the corpus) and a chunk (from the index) have in common."""

    @property
    def doc_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def chapter(self) -> str: ...
    @property
    def section(self) -> str: ...
    @property
    def subheading(self) -> str | None: ...


def heading_path(item: Located) -> str:
    """«Helse og eldre › Fastlegeordningen» (› sub-heading when there is one)."""
    parts = [item.chapter, item.section]
    if item.subheading:
        parts.append(item.subheading)
    return " › ".join(parts)


def citation_string(title: str, item: Located) -> str:
    """The string an aide pastes into a document: «Leangen-erklæringen, Helse og eldre › Fastlegeordningen»."""
    return f"{title}, {heading_path(item)}"


def shorten(text: str, limit: int = 90) -> str:
    """At most `limit` characters, cut at a word, with «…»."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + " …"


def short_place(item: Located) -> str:
    """The nearest heading only: «Fastlegeordningen», «Skole» (the whole path is shown when opened)."""
    return item.subheading or item.section or item.chapter


def source_label(n: int | None, item: Located, text: str | None = None) -> str:
    """Expander label of a cited (numbered) or related (unnumbered) pledge, one line on a phone:
    badge, nearest heading, opening words (the page's stylesheet cuts what does not fit).

    `text` is the whole verbatim unit when known (a long passage is indexed in pieces).
    """
    place = f"**{escape_markdown(short_place(item))}**"
    quote = escape_markdown(shorten(text if text is not None else item.text, 70))
    label = f"{place} — {quote}"
    return f"{marker_badge(n)} {label}" if n is not None else label


def doc_titles(documents: Iterable[Document]) -> dict[str, str]:
    return {d.meta.doc_id: d.meta.title for d in documents}


def corpus_title(corpus: Corpus) -> str:
    return " + ".join(d.meta.title for d in corpus.documents)


@dataclass(frozen=True)
class ContextWindow:
    """A cited unit among its neighbours: the same section (and sub-heading). A cited statement
    (one sentence of a passage) is shown as its passage with that sentence in `sentence`."""

    units: tuple[Unit, ...]
    target: int
    hidden_before: int
    hidden_after: int
    sentence: str | None = None

    @property
    def unit(self) -> Unit:
        return self.units[self.target]


class ContextIndex:
    """Where each unit sits in its section, for «show in context»."""

    def __init__(self, documents: Iterable[Document]) -> None:
        documents = tuple(documents)
        self._groups: dict[str, tuple[tuple[Unit, ...], int]] = {}
        for document in documents:
            for chapter in document.chapters:
                for section in chapter.sections:
                    for subheading in dict.fromkeys(u.subheading for u in section.units):
                        group = tuple(u for u in section.units if u.subheading == subheading)
                        for position, unit in enumerate(group):
                            self._groups[unit.id] = (group, position)
        #: Statements (`…/p1/s4`) are sentences of a passage, not units of a section of their own.
        self._statements: dict[str, Unit] = {
            s.id: s for d in documents for s in d.statements if s.parent is not None and s.parent in self._groups
        }

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._groups or unit_id in self._statements

    def unit(self, unit_id: str) -> Unit | None:
        """The unit (pledge, passage or statement) with this id, or None."""
        if unit_id in self._statements:
            return self._statements[unit_id]
        found = self._groups.get(unit_id)
        return found[0][found[1]] if found is not None else None

    def window(self, unit_id: str, radius: int = CONTEXT_RADIUS) -> ContextWindow | None:
        """The unit with up to `radius` neighbours each side, or None for an unknown id. A statement's
        window is its passage's, with the statement as the sentence to highlight in it."""
        statement = self._statements.get(unit_id)
        found = self._groups.get(statement.parent if statement is not None and statement.parent else unit_id)
        if found is None:
            return None
        group, position = found
        start, stop = max(0, position - radius), min(len(group), position + radius + 1)
        sentence = statement.text if statement is not None else None
        return ContextWindow(group[start:stop], position - start, start, len(group) - stop, sentence)


def _highlight(text: str) -> str:
    return f":orange-background[**{text}**]"


def _context_line(unit: Unit, *, highlighted: bool, sentence: str | None = None) -> str:
    """One unit of the window; the cited one highlighted, or only its cited sentence when given."""
    whole = " ".join(unit.text.split())
    cited = " ".join(sentence.split()) if sentence else ""
    if highlighted and cited and cited in whole:
        before, _, after = whole.partition(cited)
        text = escape_markdown(before) + _highlight(escape_markdown(cited)) + escape_markdown(after)
        highlighted_whole = False
    else:
        text = escape_markdown(whole)
        highlighted_whole = highlighted
    if unit.kind == "passage":
        text = f"«{text}»"
    if highlighted_whole:
        return f"- {_highlight(text)} :orange-badge[sitert]"
    return f"- {text} :orange-badge[sitert]" if highlighted else f"- {text}"


def _count_points(n: int) -> str:
    return f"{n} punkt" if n == 1 else f"{n} punkter"


def context_markdown(window: ContextWindow) -> str:
    """The neighbours as a list, the cited unit highlighted; «…» where more of the section follows."""
    head = f"*{escape_markdown(heading_path(window.unit))}*"
    starts_with_pledge = window.units[0].kind == "pledge"
    if starts_with_pledge:
        head += " — Byrådet vil:"
    lines = [head, ""]
    if window.hidden_before:
        lines.append(f"- *… {_count_points(window.hidden_before)} før*")
    # The section's prose comes first; the pledges are the list under «Byrådet vil:» after it.
    for i, unit in enumerate(window.units):
        if unit.kind == "pledge" and i > 0 and window.units[i - 1].kind == "passage":
            lines += ["", "Byrådet vil:", ""]
        lines.append(_context_line(unit, highlighted=i == window.target, sentence=window.sentence))
    if window.hidden_after:
        lines.append(f"- *… {_count_points(window.hidden_after)} etter*")
    return "\n".join(lines)


# --- conversation ------------------------------------------------------------------------------


@dataclass
class Turn:
    """One question and what came back: an answer, or a message (invalid question, failure)."""

    question: str
    answer: Answer | None = None
    message: str | None = None
    invalid: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    feedback_id: int | None = None
    comment_sent: bool = False


History = Sequence[tuple[str, str]]


class Asks(Protocol):
    """The part of `Assistant` the chat needs (a stand-in in tests)."""

    def ask(self, question: str, history: History = ()) -> Answer: ...


class Streams(Protocol):
    def stream(self, question: str, history: History = ()) -> Iterator[str | Answer]: ...


def history_pairs(turns: Sequence[Turn]) -> list[tuple[str, str]]:
    """The conversation so far as (question, answer) pairs, oldest first. A follow-up counts as
    what it was read as («og hva med kollektiv?» as «Alle løfter om kollektiv»), so the next one
    keeps the thread; small talk («takk») is no part of it."""
    return [
        (t.answer.standalone_question or t.question, t.answer.text)
        for t in turns
        if t.answer is not None and t.answer.decision != "chat"
    ]


def ask_with_history(assistant: Asks, question: str, history: History) -> Answer:
    """Answer `question` in the light of the earlier turns: a follow-up («og for eldre?») is
    rewritten to a standalone question before retrieval (by the model on generative backends,
    by a heuristic on the extractive one)."""
    return assistant.ask(question, history)


@dataclass
class StreamResult:
    """Where `text_events` leaves the checked answer that ends a stream."""

    answer: Answer | None = None


def text_events(events: Iterable[str | Answer], result: StreamResult) -> Iterator[str]:
    """The text pieces of `Assistant.stream` for `st.write_stream`; the final Answer goes to `result`."""
    for event in events:
        if isinstance(event, Answer):
            result.answer = event
        elif event:
            yield event


def stream_with_history(assistant: Streams, question: str, history: History, result: StreamResult) -> Iterator[str]:
    """A generative answer as the model writes it; the checked Answer (citation guard applied,
    possibly an extractive fallback) is in `result` once the iterator is exhausted."""
    return text_events(assistant.stream(question, history), result)


#: Shown while a model writes. A small local model on a few cores needs up to half a minute to
#: read its sources before the first word, so the wait is named rather than left blank.
WRITING_NOTE = "Språkmodellen skriver svaret …"
WRITING_NOTE_LOCAL = (
    "En lokal språkmodell skriver svaret … Den leser kildene først, så det kan ta opptil et halvt minutt "
    "før de første ordene kommer."
)


def writing_note(backend: str) -> str:
    return WRITING_NOTE_LOCAL if backend == "local" else WRITING_NOTE


def method_description(backend: str) -> str:
    """The sidebar's sentence on how answers are made."""
    if backend == "local":
        return (
            "Svarene skrives av en liten lokal språkmodell på denne maskinen, ut fra erklæringen; hver påstand "
            "har en kilde. Svar uten gyldig kilde byttes ut med sitater fra erklæringen."
        )
    if backend == "extractive":
        return "Svarene er sitater fra erklæringen, ikke tolkninger."
    return "Svarene skrives av en språkmodell ut fra erklæringen; hver påstand har en kilde."


def citation_ids(answer: Answer) -> list[str]:
    return [c.chunk.unit_id for c in answer.citations]


_ERROR_MESSAGES: tuple[tuple[type[AssistantError], str], ...] = (
    (CorpusError, "Dokumentene i korpuset kunne ikke leses, så assistenten er ikke tilgjengelig akkurat nå."),
    (IndexMissingError, "Søkeindeksen mangler – kjør «make index» og last siden på nytt."),
    (IndexStaleError, "Søkeindeksen er utdatert – kjør «make index» og last siden på nytt."),
    (IndexCorruptError, "Søkeindeksen er skadet – bygg den på nytt med «make index» og last siden på nytt."),
    (ModelUnavailableError, "Språkmodellen kunne ikke lastes – kjør «make index» og last siden på nytt."),
    (ConfigError, "Innstillingene er ugyldige – sjekk ASSISTANT_*-variablene og .env-filen."),
)
GENERIC_ERROR = "Noe gikk galt, så jeg kunne ikke svare – prøv igjen om litt."


def user_message(exc: BaseException) -> str:
    """One Norwegian sentence for the user; the details belong in the server log."""
    if isinstance(exc, InvalidQuestionError):
        return str(exc)
    if isinstance(exc, LocalModelMissingError):
        return (
            f"Den lokale språkmodellen mangler eller er ufullstendig – installer den med «{exc.install_command}» "
            "og last siden på nytt."
        )
    if isinstance(exc, LocalModelLoadError):
        return (
            "Den lokale språkmodellen kunne ikke lastes – installer den på nytt med "
            "«python -m assistant models install <navn>», eller sett ASSISTANT_LOCAL_CONTEXT_TOKENS lavere."
        )
    for kind, message in _ERROR_MESSAGES:
        if isinstance(exc, kind):
            return message
    return GENERIC_ERROR


# --- the pledge browser ------------------------------------------------------------------------

ALL = "Alle"
ALL_THEMES = "Alle temaer"


def chapters_and_sections(units: Iterable[Unit]) -> dict[str, list[str]]:
    """Chapters in document order, each with its sections in order."""
    tree: dict[str, list[str]] = {}
    for unit in units:
        sections = tree.setdefault(unit.chapter, [])
        if unit.section not in sections:
            sections.append(unit.section)
    return tree


def _group_path(unit: Unit) -> str:
    return f"{unit.section} › {unit.subheading}" if unit.subheading else unit.section


def heading_labels(units: Iterable[Unit]) -> dict[str, str]:
    """The pledge groups under each heading, in document order, by their short label: the
    sub-heading («Barnehage»), or the section where pledges stand right under it. A label two
    groups share gets its section in front. Maps label → «Section › Sub-heading» path."""
    paths = list(dict.fromkeys(_group_path(u) for u in units))
    short = [p.rsplit(" › ", 1)[-1] for p in paths]
    return {(s if short.count(s) == 1 else p): p for s, p in zip(short, paths, strict=True)}


def heading_options(pledges: Sequence[Unit], chapter: str | None) -> list[str]:
    """The heading filter's options within a chapter (or all), in document order."""
    return [ALL, *heading_labels(u for u in pledges if chapter in (None, ALL, u.chapter))]


@dataclass(frozen=True)
class BrowserTheme:
    """A theme of the theme index as a filter: its name and its pledges (those listed for it and
    those under the headings wholly about it)."""

    key: str
    name: str
    names: frozenset[str]
    pledges: frozenset[str]


_NORWEGIAN_ORDER = str.maketrans({"æ": "{", "ø": "|", "å": "}"})


def norwegian_order(text: str) -> str:
    """A sort key that puts æ, ø, å after z, as Norwegian does."""
    return text.casefold().translate(_NORWEGIAN_ORDER)


def browser_themes(corpus: Corpus) -> tuple[BrowserTheme, ...]:
    """The theme index's themes that have pledges, in Norwegian alphabetical order."""
    themes = []
    for theme in corpus.themes:
        headings = set(theme.headings)
        pledges = frozenset(
            u.id for u in corpus.pledges if u.id in theme.units or u.location in headings or u.heading_path in headings
        )
        if pledges:
            names = frozenset(n.casefold() for n in (theme.name, *theme.names))
            themes.append(BrowserTheme(theme.id, theme.name, names, pledges))
    return tuple(sorted(themes, key=lambda t: norwegian_order(t.name)))


def theme_named(themes: Sequence[BrowserTheme], name: str) -> BrowserTheme | None:
    """The theme called `name` (its display name or one of its names), if exactly one is."""
    wanted = name.casefold().strip()
    exact = [t for t in themes if t.name.casefold() == wanted]
    found = exact or [t for t in themes if wanted in t.names]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class BrowserFilters:
    """What the pledge browser shows: a chapter, a heading and a theme (ALL: any), and a search."""

    chapter: str = ALL
    heading: str = ALL
    theme: str = ALL_THEMES
    query: str = ""

    def active(self) -> list[str]:
        """The filters in use, by their widget name: «kapittel», «overskrift», «tema»."""
        used = [
            ("kapittel", self.chapter != ALL),
            ("overskrift", self.heading != ALL),
            ("tema", self.theme != ALL_THEMES),
        ]
        return [name for name, on in used if on]

    def without(self, names: Iterable[str]) -> BrowserFilters:
        names = set(names)
        return BrowserFilters(
            ALL if "kapittel" in names else self.chapter,
            ALL if "overskrift" in names else self.heading,
            ALL_THEMES if "tema" in names else self.theme,
            self.query,
        )

    def describe(self, name: str) -> str:
        """«kapittelet «Helse og eldre»», «overskriften «Skole»», «temaet «Eldre»»."""
        value = {"kapittel": self.chapter, "overskrift": self.heading, "tema": self.theme}[name]
        noun = {"kapittel": "kapittelet", "overskrift": "overskriften", "tema": "temaet"}[name]
        return f"{noun} «{value}»"


#: The browser's filters and search by their widget key (and URL parameter), at their defaults.
FILTER_DEFAULTS: dict[str, str] = {"kapittel": ALL, "overskrift": ALL, "tema": ALL_THEMES, "sok": ""}


def browser_params(filters: BrowserFilters) -> dict[str, str]:
    """The filters by widget key (and URL parameter): «kapittel», «overskrift», «tema», «sok»."""
    return {"kapittel": filters.chapter, "overskrift": filters.heading, "tema": filters.theme, "sok": filters.query}


def filter_pledges(
    pledges: Sequence[Unit],
    chapter: str | None = None,
    heading: str | None = None,
    ranked_ids: Sequence[str] | None = None,
    theme: BrowserTheme | None = None,
) -> list[Unit]:
    """The pledges in a chapter, under a heading (its short label, path or section) and of a theme
    (None or «Alle»: any), in search order when ranked."""

    def keep(unit: Unit) -> bool:
        if chapter not in (None, ALL, unit.chapter):
            return False
        if heading not in (None, ALL):
            path = _group_path(unit)
            if heading not in (path, unit.section, path.rsplit(" › ", 1)[-1]):
                return False
        return theme is None or unit.id in theme.pledges

    if ranked_ids is None:
        return [u for u in pledges if keep(u)]
    by_id = {u.id: u for u in pledges}
    return [by_id[i] for i in ranked_ids if i in by_id and keep(by_id[i])]


def apply_filters(
    pledges: Sequence[Unit], filters: BrowserFilters, themes: Sequence[BrowserTheme], ranked: Sequence[str] | None
) -> list[Unit]:
    theme = next((t for t in themes if t.name == filters.theme), None) if filters.theme != ALL_THEMES else None
    return filter_pledges(pledges, filters.chapter, filters.heading, ranked, theme)


def hiding_filters(
    pledges: Sequence[Unit], filters: BrowserFilters, themes: Sequence[BrowserTheme], ranked: Sequence[str] | None
) -> tuple[list[str], int]:
    """When the filters leave nothing: which of them hide the hits, and how many show without them.

    A filter that alone hides every hit is named; when no single one does, all filters in use are."""
    active = filters.active()
    if not active or apply_filters(pledges, filters, themes, ranked):
        return [], 0
    alone = [
        (name, n) for name in active if (n := len(apply_filters(pledges, filters.without([name]), themes, ranked))) > 0
    ]
    if alone:
        return [name for name, _ in alone], max(n for _, n in alone)
    everything = len(apply_filters(pledges, filters.without(active), themes, ranked))
    return (active, everything) if everything else ([], 0)


def hidden_message(filters: BrowserFilters, hiding: Sequence[str], n_hidden: int) -> str:
    """One sentence saying which filter hides what is there: «Søket «sykkel» har 5 treff, men ingen
    i kapittelet «Helse og eldre».»"""
    where = " og ".join(filters.describe(name) for name in hiding)
    if filters.query.strip():
        found = f"Søket «{filters.query.strip()}» har {n_hidden} treff"
    else:
        found = (
            f"Uten dette filteret er det {n_hidden} løfter"
            if len(hiding) == 1
            else f"Uten disse filtrene er det {n_hidden} løfter"
        )
    return f"{found}, men ingen med {where}."


SearchMatch = Literal["words", "related", "some_words", "meaning"]
#: What the pledge browser says above hits that do not contain every word of the search.
SEARCH_NOTES: dict[SearchMatch, str] = {
    "words": "",
    "related": "Ingen løfter bruker alle ordene i søket; her er løftene som handler om dem.",
    "some_words": "Ingen løfter har alle ordene i søket; her er løftene med noen av dem.",
    "meaning": "Ingen løfter inneholder ordene i søket; her er de nærmeste etter mening.",
}


def _expansion_match(terms: TermIndex, word: QueryWord, position: int) -> bool:
    """Whether the unit's search words (its expansions: what residents call it) have the word."""
    expansions = terms.expansion_terms[position]
    return word.stem in expansions or (len(word.stem) >= 4 and any(t.startswith(word.stem) for t in expansions))


def search_ranking(
    hits: Sequence[Hit], terms: TermIndex | None = None, positions: Mapping[str, int] | None = None, query: str = ""
) -> tuple[list[str], SearchMatch]:
    """Pledge ids for a text search, best first, and how they match it: only relevant hits.

    The hybrid search ranks every chunk; the browser shows, in that order, the first of:
    pledges whose own words contain every word of the search (stemmed, compound-aware, typos
    corrected: «sykkel» finds «sykkelveinett», not a pledge on transport plans); pledges whose own
    or search words cover every word («trygg skolevei»); pledges with some of the words, most
    first; and only when none has any, the nearest by meaning (at most `SEARCH_FALLBACK`).
    Without the term index, a BM25 score above zero counts as containing a word."""
    pledges = [h for h in hits if h.chunk.kind == "pledge"]
    words = terms.query_words(query) if terms is not None and query.strip() else []
    if terms is not None and positions is not None and words:
        own: dict[str, int] = {}
        told: dict[str, bool] = {}
        for hit in pledges:
            position = positions.get(hit.chunk.id)
            if position is None or hit.chunk.unit_id in own:
                continue
            matched = [terms.matches(w, position, with_heading=False) for w in words]
            own[hit.chunk.unit_id] = sum(matched)
            told[hit.chunk.unit_id] = all(
                m or _expansion_match(terms, w, position) for m, w in zip(matched, words, strict=True)
            )
        complete = [u for u, n in own.items() if n == len(words)]
        if complete:
            return complete, "words"
        related = [u for u, ok in told.items() if ok]
        if related:
            return related, "related"
        some = sorted((u for u, n in own.items() if n > 0), key=lambda u: -own[u])
        if some:
            return some, "some_words"
    elif terms is None:
        lexical = list(dict.fromkeys(h.chunk.unit_id for h in pledges if (h.bm25_score or 0.0) > 0.0))
        if lexical:
            return lexical, "words"
    return list(dict.fromkeys(h.chunk.unit_id for h in pledges))[:SEARCH_FALLBACK], "meaning"


@dataclass(frozen=True)
class BrowserLink:
    """From a chapter, theme or heading answer to the same pledges in the browser."""

    label: str
    filters: BrowserFilters


def browser_link(answer: Answer, pledges: Sequence[Unit], themes: Sequence[BrowserTheme]) -> BrowserLink | None:
    """The browser view of what a broad answer covers: its chapter, theme or heading."""
    if answer.refused or not answer.scope.name:
        return None
    name = answer.scope.name
    if answer.decision == "chapter" and any(u.chapter == name for u in pledges):
        return BrowserLink("Alle løftene i kapittelet i Løfteoversikt", BrowserFilters(chapter=name))
    if answer.decision == "theme" and (theme := theme_named(themes, name)) is not None:
        return BrowserLink(f"Alle løftene om «{theme.name}» i Løfteoversikt", BrowserFilters(theme=theme.name))
    if answer.decision == "heading":
        labels = heading_labels(pledges)
        if name in labels:
            chapter = next(u.chapter for u in pledges if _group_path(u) == labels[name])
            return BrowserLink(
                "Alle løftene under overskriften i Løfteoversikt", BrowserFilters(chapter=chapter, heading=name)
            )
    return None


def page_count(n_items: int, per_page: int) -> int:
    return max(1, -(-n_items // per_page))


def page_slice(items: Sequence[Unit], page: int, per_page: int) -> list[Unit]:
    page = min(max(1, page), page_count(len(items), per_page))
    return list(items[(page - 1) * per_page : page * per_page])


CSV_FIELDS = ("id", "kapittel", "seksjon", "underoverskrift", "løfte", "sitering")


def pledges_csv(pledges: Sequence[Unit], titles: dict[str, str]) -> bytes:
    """The selection as CSV (UTF-8 with BOM, so spreadsheet programs read æøå right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for unit in pledges:
        title = titles.get(unit.doc_id, unit.doc_id)
        writer.writerow(
            [unit.id, unit.chapter, unit.section, unit.subheading or "", unit.text, citation_string(title, unit)]
        )
    return buffer.getvalue().encode("utf-8-sig")


def pledges_markdown(pledges: Sequence[Unit], titles: dict[str, str], description: str = "") -> str:
    """The selection as a Markdown document, grouped by chapter › section (› sub-heading)."""
    doc_names = list(dict.fromkeys(titles.get(u.doc_id, u.doc_id) for u in pledges)) or list(titles.values())
    lines = [f"# {' + '.join(doc_names)}: {len(pledges)} løfter", ""]
    if description:
        lines += [description, ""]
    current = None
    for unit in pledges:
        heading = heading_path(unit)
        if heading != current:
            if current is not None:
                lines.append("")
            lines += [f"## {heading}", "", "Byrådet vil:", ""]
            current = heading
        lines.append(f"- {' '.join(unit.text.split())} (`{unit.id}`)")
    return "\n".join(lines) + "\n"


def selection_description(chapter: str | None, heading: str | None, query: str, theme: str | None = None) -> str:
    """A plain sentence saying what was filtered, for the export."""
    parts = []
    if chapter and chapter != ALL:
        parts.append(f"kapittel «{chapter}»")
    if heading and heading != ALL:
        parts.append(f"overskrift «{heading}»")
    if theme and theme != ALL_THEMES:
        parts.append(f"tema «{theme}»")
    if query.strip():
        parts.append(f"søk «{query.strip()}»")
    return "Utvalg: " + ", ".join(parts) + "." if parts else "Alle løfter."


def export_filename(ext: str) -> str:
    return f"leangen-erklaeringen-lofter.{ext}"


# --- one assistant per process, loaded behind the page ----------------------------------------

_loads_lock = threading.Lock()
_loads = 0


def assistant_loads() -> int:
    """How many times this process has loaded an assistant (model and index); should be 1."""
    return _loads


def _log(message: str) -> None:
    print(f"[leangen-assistenten] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Library:
    """What the page needs at once, before the model and the index: the corpus and its views
    (a tenth of a second to build), and the assistant not yet warmed up (its settings checked)."""

    assistant: Assistant
    context: ContextIndex
    titles: dict[str, str]
    title: str
    period: str
    corpus_version: str
    pledges: tuple[Unit, ...]
    themes: tuple[BrowserTheme, ...]


def load_library(settings: Settings) -> Library:
    """The assistant (settings checked: an unknown backend fails here) and its corpus."""
    assistant = Assistant(settings, progress=_log)
    corpus = assistant.corpus
    return Library(
        assistant=assistant,
        context=ContextIndex(corpus.documents),
        titles=doc_titles(corpus.documents),
        title=corpus_title(corpus),
        period=corpus.documents[0].meta.period if corpus.documents else "",
        corpus_version=corpus.sha256[:8],
        pledges=corpus.pledges,
        themes=browser_themes(corpus),
    )


@dataclass(frozen=True)
class Resources:
    """What every browser session shares once loaded: the warmed-up assistant, views of its corpus,
    and the term index the pledge browser's search keeps relevant hits with."""

    library: Library
    terms: TermIndex
    positions: dict[str, int]
    n_chunks: int

    @property
    def assistant(self) -> Assistant:
        return self.library.assistant

    @property
    def context(self) -> ContextIndex:
        return self.library.context

    @property
    def titles(self) -> dict[str, str]:
        return self.library.titles

    @property
    def title(self) -> str:
        return self.library.title

    @property
    def corpus_version(self) -> str:
        return self.library.corpus_version

    @property
    def pledges(self) -> tuple[Unit, ...]:
        return self.library.pledges


def load_resources(settings: Settings, library: Library | None = None) -> Resources:
    """Load the model and the index now (the app does this behind the page, once per process)."""
    global _loads  # noqa: PLW0603 - a process-wide counter is the point
    started = time.perf_counter()
    library = library or load_library(settings)
    assistant = library.assistant
    assistant.warm_up()
    index = assistant.index
    resources = Resources(
        library=library,
        terms=TermIndex(list(index.chunks), index.decompounder),
        positions={c.id: i for i, c in enumerate(index.chunks)},
        n_chunks=len(index.chunks),
    )
    with _loads_lock:
        _loads += 1
        count = _loads
    _log(
        f"assistant loaded: load #{count}, model {settings.embedding_model}, backend {settings.backend}, "
        f"corpus {library.corpus_version}, {(time.perf_counter() - started) * 1000:.0f} ms"
    )
    return resources


class Loader:
    """Loads the resources in a background thread, so the page and the welcome show at once.

    `result()` waits for them (the first question waits here, with a spinner, and is answered as
    soon as the model is ready); a failure is kept and raised to every caller."""

    def __init__(self, load: Callable[[], Resources]) -> None:
        self._load = load
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._resources: Resources | None = None
        self._error: BaseException | None = None

    def start(self) -> Loader:
        with self._lock:
            if not self._started:
                self._started = True
                with _loaders_lock:
                    _loaders.append(self)
                threading.Thread(target=self._run, name="leangen-loader", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self._resources = self._load()
        except BaseException as exc:  # kept and raised to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        """Whether loading has ended (with the resources, or with an error)."""
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error if self.ready else None

    def result(self, timeout: float | None = None) -> Resources:
        """The resources, waiting up to `timeout` seconds (None: as long as it takes)."""
        self.start()
        if not self._done.wait(timeout):
            raise TimeoutError("the assistant is still loading")
        if self._error is not None:
            raise self._error
        assert self._resources is not None
        return self._resources


_loaders_lock = threading.Lock()
_loaders: list[Loader] = []


def wait_for_loaders(timeout: float = 120.0) -> None:
    """Wait for every loader started in this process to end (tests, before clearing the cache)."""
    with _loaders_lock:
        loaders = list(_loaders)
    deadline = time.monotonic() + timeout
    for loader in loaders:
        loader._done.wait(max(0.0, deadline - time.monotonic()))
