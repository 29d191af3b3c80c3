"""Plain, frozen dataclasses passed between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: A statement is one sentence of a prose passage that states a commitment («Byrådet vil jobbe for at
#: alle i Trondheim har sin egen fastlege …»): citable alone, verbatim, inside its passage.
UnitKind = Literal["pledge", "passage", "statement"]


@dataclass(frozen=True)
class DocumentMeta:
    """What the corpus metadata file says about one document."""

    doc_id: str
    title: str
    period: str
    parties: tuple[str, ...]
    kind: str
    source_file: str
    subtitle: str = ""
    origin: str = ""
    id_prefix: str = ""
    strip_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unit:
    """A citable unit of the platform: a pledge (bullet) or a prose passage.

    `text` is verbatim (only PDF line-break damage repaired); it is what is shown and quoted.
    """

    id: str
    kind: UnitKind
    text: str
    doc_id: str
    chapter: str
    section: str
    subheading: str | None
    number: int
    depth: int = 0
    #: The passage a statement is a sentence of (None for pledges and passages).
    parent: str | None = None

    @property
    def heading_path(self) -> str:
        parts = [self.chapter, self.section]
        if self.subheading:
            parts.append(self.subheading)
        return " › ".join(parts)

    @property
    def location(self) -> str:
        """Chapter › section, as shown beside a citation."""
        return f"{self.chapter} › {self.section}"


@dataclass(frozen=True)
class Section:
    title: str
    slug: str
    units: tuple[Unit, ...]

    @property
    def pledges(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.kind == "pledge")


@dataclass(frozen=True)
class Chapter:
    title: str
    slug: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Document:
    meta: DocumentMeta
    chapters: tuple[Chapter, ...]
    #: Commitment sentences of the prose passages, in document order (see `UnitKind`).
    statements: tuple[Unit, ...] = ()

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for c in self.chapters for s in c.sections for u in s.units)

    @property
    def pledges(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.kind == "pledge")


@dataclass(frozen=True)
class Expansion:
    """Search expansions of one unit: questions and words people use for what it says.

    Used only to find the unit (doc2query-style); never shown or quoted, so they need not be
    verbatim, only faithful.
    """

    unit_id: str
    queries: tuple[str, ...]
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Theme:
    """A subject of the theme index: a group, place or policy area people ask about, which may cut
    across chapters («eldre», «Heimdal», «kollektivtrafikk»). Curated from the text, like a book's
    index: `units` are every unit a careful reader would cite for it."""

    id: str
    name: str
    description: str
    #: What people call it: bokmål, nynorsk, English and everyday words (lower-cased as written).
    names: tuple[str, ...]
    #: Heading paths ("Helse og eldre › Flere eldre innbyggere") wholly about the theme.
    headings: tuple[str, ...]
    units: tuple[str, ...]


@dataclass(frozen=True)
class Chunk:
    """What is indexed: a unit (or a token-bounded piece of a long passage)."""

    id: str
    unit_id: str
    kind: UnitKind
    text: str
    retrieval_text: str
    chapter: str
    section: str
    subheading: str | None
    doc_id: str
    number: int
    n_tokens: int
    #: The unit's search expansions (never shown): its synonyms and its residents' questions.
    search_keywords: str = ""
    search_questions: str = ""

    @property
    def search_terms(self) -> str:
        """Everything the lexical leg searches beside the unit's own words."""
        return f"{self.search_keywords} {self.search_questions}".strip()

    @property
    def location(self) -> str:
        return f"{self.chapter} › {self.section}"


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    """`[n]` in an answer. `text` is the whole verbatim unit (a long passage may be indexed in
    pieces; the source shown is always the full pledge or passage)."""

    n: int
    chunk: Chunk
    text: str


@dataclass(frozen=True)
class AnswerScope:
    """What the answer covers (see `assistant.scope`): its kind and, for a broad scope, its name."""

    kind: str = "unit"
    name: str = ""


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    refused: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[Hit, ...]
    backend: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    related: tuple[Chunk, ...] = ()
    #: What was searched: a follow-up rewritten with the conversation.
    standalone_question: str = ""
    #: Why this answer is not what the configured backend would normally give (a fallback).
    note: str | None = None
    #: Citation guard figures for generated answers.
    removed_citations: int = 0
    uncited_sentences: tuple[str, ...] = ()
    #: Claims the guard dropped because every marker they carried pointed outside the sources.
    dropped_sentences: tuple[str, ...] = ()
    #: Cited claims no given source says (support check, local backend): dropped.
    unsupported_sentences: tuple[str, ...] = ()
    #: Cited claims moved to the one given source that says them (support check, local backend).
    repointed_citations: int = 0
    #: How the answer was decided (section, topic, ranked, refused, generated), and why a refusal.
    decision: str = ""
    refusal_reason: str | None = None
    scope: AnswerScope = AnswerScope()
