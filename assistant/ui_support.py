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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from assistant.composing import RELATED_INTRO
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
from assistant.settings import Settings
from assistant.types import Answer, Document, Hit, Unit

APP_TITLE = "Leangen-assistenten"
CHAT_PLACEHOLDER = "Still et spørsmål om Leangen-erklæringen …"
NEW_CHAT_LABEL = "Ny samtale"
RELATED_HEADING = "Relaterte løfter"
SOURCES_HEADING = "Kilder"
RELATED_NOTE = RELATED_INTRO
EXAMPLE_QUESTIONS = (
    "Hva vil byrådet gjøre med fastlegeordningen?",
    "Hvor mye er fritidskortet verdt?",
    "Hva står det om kulturskolen?",
    "Alle løfter om sykkel",
)
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


# --- answers: markers, streaming, transparency -----------------------------------------------

_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")
_BOLD_LINE = re.compile(r"\*\*(.+)\*\*")
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
            lines.append(f"**{escape_markdown(bold.group(1))}**")
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


def source_label(n: int | None, item: Located, text: str | None = None) -> str:
    """Expander label of a cited (numbered) or related (unnumbered) pledge: badge, place, opening words.

    `text` is the whole verbatim unit when known (a long passage is indexed in pieces).
    """
    place = f"**{escape_markdown(heading_path(item))}**"
    quote = escape_markdown(shorten(text if text is not None else item.text, 110))
    label = f"{place} — {quote}"
    return f"{marker_badge(n)} {label}" if n is not None else label


def doc_titles(documents: Iterable[Document]) -> dict[str, str]:
    return {d.meta.doc_id: d.meta.title for d in documents}


def corpus_title(corpus: Corpus) -> str:
    return " + ".join(d.meta.title for d in corpus.documents)


@dataclass(frozen=True)
class ContextWindow:
    """A cited unit among its neighbours: the same section (and sub-heading)."""

    units: tuple[Unit, ...]
    target: int
    hidden_before: int
    hidden_after: int

    @property
    def unit(self) -> Unit:
        return self.units[self.target]


class ContextIndex:
    """Where each unit sits in its section, for «show in context»."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self._groups: dict[str, tuple[tuple[Unit, ...], int]] = {}
        for document in documents:
            for chapter in document.chapters:
                for section in chapter.sections:
                    for subheading in dict.fromkeys(u.subheading for u in section.units):
                        group = tuple(u for u in section.units if u.subheading == subheading)
                        for position, unit in enumerate(group):
                            self._groups[unit.id] = (group, position)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._groups

    def unit(self, unit_id: str) -> Unit | None:
        found = self._groups.get(unit_id)
        return found[0][found[1]] if found is not None else None

    def window(self, unit_id: str, radius: int = CONTEXT_RADIUS) -> ContextWindow | None:
        """The unit with up to `radius` neighbours each side, or None for an unknown id."""
        found = self._groups.get(unit_id)
        if found is None:
            return None
        group, position = found
        start, stop = max(0, position - radius), min(len(group), position + radius + 1)
        return ContextWindow(group[start:stop], position - start, start, len(group) - stop)


def _context_line(unit: Unit, *, highlighted: bool) -> str:
    text = escape_markdown(" ".join(unit.text.split()))
    if unit.kind == "passage":
        text = f"«{text}»"
    if highlighted:
        return f"- :orange-background[**{text}**] :orange-badge[sitert]"
    return f"- {text}"


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
        lines.append(_context_line(unit, highlighted=i == window.target))
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
    """The conversation so far as (question, answer) pairs, oldest first."""
    return [(t.question, t.answer.text) for t in turns if t.answer is not None]


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


def chapters_and_sections(units: Iterable[Unit]) -> dict[str, list[str]]:
    """Chapters in document order, each with its sections in order."""
    tree: dict[str, list[str]] = {}
    for unit in units:
        sections = tree.setdefault(unit.chapter, [])
        if unit.section not in sections:
            sections.append(unit.section)
    return tree


def search_ranking(hits: Sequence[Hit]) -> tuple[list[str], bool]:
    """Pledge ids for a text search, best first, and whether they match words of the query.

    The hybrid search ranks every chunk. Pledges containing a query word (after stemming,
    decompounding and typo correction: a BM25 score above zero) are the result; when there are
    none, the nearest ones by meaning stand in (flagged False).
    """
    pledges = [h for h in hits if h.chunk.kind == "pledge"]
    lexical = list(dict.fromkeys(h.chunk.unit_id for h in pledges if (h.bm25_score or 0.0) > 0.0))
    if lexical:
        return lexical, True
    return list(dict.fromkeys(h.chunk.unit_id for h in pledges))[:SEARCH_FALLBACK], False


def filter_pledges(
    pledges: Sequence[Unit],
    chapter: str | None = None,
    section: str | None = None,
    ranked_ids: Sequence[str] | None = None,
) -> list[Unit]:
    """The pledges in a chapter/section (None or «Alle»: any), in search order when ranked."""

    def keep(unit: Unit) -> bool:
        return (chapter in (None, ALL, unit.chapter)) and (section in (None, ALL, unit.section))

    if ranked_ids is None:
        return [u for u in pledges if keep(u)]
    by_id = {u.id: u for u in pledges}
    return [by_id[i] for i in ranked_ids if i in by_id and keep(by_id[i])]


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


def selection_description(chapter: str | None, section: str | None, query: str) -> str:
    """A plain sentence saying what was filtered, for the export."""
    parts = []
    if chapter and chapter != ALL:
        parts.append(f"kapittel «{chapter}»")
    if section and section != ALL:
        parts.append(f"seksjon «{section}»")
    if query.strip():
        parts.append(f"søk «{query.strip()}»")
    return "Utvalg: " + ", ".join(parts) + "." if parts else "Alle løfter."


def export_filename(ext: str) -> str:
    return f"leangen-erklaeringen-lofter.{ext}"


# --- one assistant per process -----------------------------------------------------------------

_loads_lock = threading.Lock()
_loads = 0


def assistant_loads() -> int:
    """How many times this process has loaded an assistant (model and index); should be 1."""
    return _loads


def _log(message: str) -> None:
    print(f"[leangen-assistenten] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Resources:
    """What every browser session shares: the warmed-up assistant and views of its corpus."""

    assistant: Assistant
    context: ContextIndex
    titles: dict[str, str]
    title: str
    corpus_version: str
    pledges: tuple[Unit, ...]
    n_chunks: int


def load_resources(settings: Settings) -> Resources:
    """Build the assistant and load its model and index now (the app caches the result per process)."""
    global _loads  # noqa: PLW0603 - a process-wide counter is the point
    started = time.perf_counter()
    assistant = Assistant(settings, progress=_log)
    assistant.warm_up()
    corpus = assistant.corpus
    resources = Resources(
        assistant=assistant,
        context=ContextIndex(corpus.documents),
        titles=doc_titles(corpus.documents),
        title=corpus_title(corpus),
        corpus_version=corpus.sha256[:8],
        pledges=corpus.pledges,
        n_chunks=len(assistant.index.chunks),
    )
    with _loads_lock:
        _loads += 1
        count = _loads
    _log(
        f"assistant loaded: load #{count}, model {settings.embedding_model}, backend {settings.backend}, "
        f"corpus {resources.corpus_version}, {(time.perf_counter() - started) * 1000:.0f} ms"
    )
    return resources
