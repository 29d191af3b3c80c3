"""Turn the PDF-extracted platform text into a tree of chapters, sections, pledges and passages.

Pure: text and metadata in, `Document` out. Words are never changed; only the damage the PDF
extraction did is repaired (bullets split across blank lines or page breaks, bullet tails that
became bullets of their own, prose paragraphs split at page breaks, soft line wraps).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from assistant.text import split_sentences
from assistant.types import Chapter, Document, DocumentMeta, Section, Unit

FRONT_CHAPTER = "Innledning"
TOC_TITLES = frozenset({"innhold", "innholdsfortegnelse"})

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_BULLET = re.compile(r"^(\s*)[-•*]\s+(.*\S)\s*$")
_TABLE_ROW = re.compile(r"^\s*\|")
_PLEDGE_MARKER = re.compile(r"^byrådet vil\s*:?$", re.IGNORECASE)
_TERMINAL = (".", "!", "?", "»", '"', "”")

# A bullet that ends in one of these words cannot be complete: the next bullet is its tail.
_DANGLING_WORDS = frozenset(
    """
    med et en ei og eller samt i på til for av som å at om fra mot der hvor de den det
    sin sitt sine seg ved under over etter mellom blant uten innen hos før enn både
    """.split()
)
# A pledge completes "Byrådet vil ...": a bullet opening with one of these cannot be a pledge.
_CONTINUATION_OPENERS = frozenset("og eller samt men det som der hvor slik".split())

#: A prose sentence states a commitment when the council, the municipality or «vi» is its subject
#: and a modal verb follows: «Byrådet vil jobbe for at alle …», «Vi skal gjøre vårt …», «Kommunen
#: skal bidra til …». Not «Merforbruk i kommunen skal reduseres» (a goal, not who acts).
_COMMITMENT = re.compile(r"^(?:Byrådet|Vi|Kommunen)(?: også| derfor)? (?:vil|skal|ønsker|må)\b")

ElementKind = Literal["heading", "bullet", "text"]


@dataclass
class _Element:
    kind: ElementKind
    text: str
    level: int = 0
    depth: int = 0
    blank_before: bool = False


@dataclass
class _OpenUnit:
    kind: Literal["pledge", "passage"]
    text: str
    chapter: str
    section: str
    subheading: str | None
    depth: int = 0


@dataclass
class _State:
    chapter: str | None = None
    section: str | None = None
    subheading: str | None = None
    in_pledge_list: bool = False
    seen_title: bool = False
    units: list[_OpenUnit] = field(default_factory=list)
    # Whether the last unit may still be continued (no heading came after it).
    open_unit: bool = False


def slugify(text: str, max_len: int = 40) -> str:
    """Readable ASCII slug; Norwegian letters are spelled out, long titles cut at a word."""
    text = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w]
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_len and slug:
            break
        slug = candidate
    return slug or "x"


def clean_heading(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "").replace("__", "")).strip()


def _normalise_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _lex(text: str) -> list[_Element]:
    """Split into headings, bullets and text; consecutive text lines are soft wraps."""
    elements: list[_Element] = []
    blank = False
    previous_was_text = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            blank = True
            previous_was_text = False
            continue
        if _TABLE_ROW.match(line):
            blank, previous_was_text = False, False
            continue
        if heading := _HEADING.match(line):
            elements.append(_Element("heading", clean_heading(heading[2]), level=len(heading[1]), blank_before=blank))
            previous_was_text = False
        elif bullet := _BULLET.match(line):
            depth = len(bullet[1].expandtabs(4)) // 2
            elements.append(_Element("bullet", bullet[2].strip(), depth=min(depth, 1), blank_before=blank))
            previous_was_text = False
        elif previous_was_text and not blank:
            elements[-1].text = f"{elements[-1].text} {line.strip()}"
        else:
            elements.append(_Element("text", line.strip(), blank_before=blank))
            previous_was_text = True
        blank = False
    for element in elements:
        element.text = _normalise_space(element.text)
    return elements


def _ends_complete(text: str) -> bool:
    return text.rstrip().endswith(_TERMINAL)


def _last_word(text: str) -> str:
    words = re.findall(r"[\wæøåÆØÅ-]+", text.lower())
    return words[-1] if words else ""


def _first_word(text: str) -> str:
    words = re.findall(r"[\wæøåÆØÅ-]+", text.lower())
    return words[0] if words else ""


def is_bullet_tail(previous: str, bullet: str) -> bool:
    """Whether `bullet` is the tail of `previous`, split off by the PDF extraction.

    A pledge completes the sentence "Byrådet vil ...", so it opens with an infinitive, "at" or an
    adverbial. A bullet that opens with a conjunction or pronoun, a plural noun ("ordninger"),
    or a lone word, or that follows a bullet ending in a preposition or article, is a tail.
    """
    if _ends_complete(previous) or previous.rstrip().endswith((",", ";", ":")):
        return False
    first = _first_word(bullet)
    if _last_word(previous) in _DANGLING_WORDS:
        return True
    if first in _CONTINUATION_OPENERS:
        return True
    if first.endswith(("er", "ene")) and first not in {"her"}:
        return True
    return len(bullet.split()) == 1 and _ends_complete(bullet)


def _looks_like_plain_subheading(text: str, next_element: _Element | None) -> bool:
    if len(text) > 70 or _ends_complete(text) or not text[:1].isupper():
        return False
    if text.endswith(":"):
        return True
    return next_element is not None and next_element.kind == "bullet"


def _is_stripped(text: str, strip: frozenset[str]) -> bool:
    return _normalise_space(text).lower() in strip


def parse_document(text: str, meta: DocumentMeta) -> Document:
    """Parse one platform document. Deterministic: the same text gives the same ids."""
    elements = _lex(text)
    strip = frozenset(_normalise_space(s).lower() for s in meta.strip_lines)
    state = _State()
    for index, element in enumerate(elements):
        next_element = elements[index + 1] if index + 1 < len(elements) else None
        if element.kind == "heading":
            _on_heading(state, element, next_element)
        elif _is_stripped(element.text, strip):
            continue
        elif element.kind == "bullet":
            _on_bullet(state, element)
        else:
            _on_text(state, element, next_element)
    tree = _build_tree(state.units, meta)
    return Document(meta=tree.meta, chapters=tree.chapters, statements=commitment_statements(tree))


def commitment_statements(document: Document) -> tuple[Unit, ...]:
    """The sentences of the prose passages that state a commitment, each a unit of its own.

    Id: the passage's id and the sentence's place in it (`…/fastlegeordningen/p1/s4`), so the id
    stays when the rule for what counts as a commitment changes."""
    statements: list[Unit] = []
    for passage in (u for u in document.units if u.kind == "passage"):
        for place, sentence in enumerate(split_sentences(passage.text), start=1):
            if _COMMITMENT.match(sentence):
                statements.append(
                    Unit(
                        id=f"{passage.id}/s{place}",
                        kind="statement",
                        text=sentence,
                        doc_id=passage.doc_id,
                        chapter=passage.chapter,
                        section=passage.section,
                        subheading=passage.subheading,
                        number=len(statements) + 1,
                        parent=passage.id,
                    )
                )
    return tuple(statements)


def _on_heading(state: _State, element: _Element, next_element: _Element | None) -> None:
    title = element.text.rstrip()
    state.open_unit = False
    if element.level == 1:
        if title.lower() in TOC_TITLES:
            return  # the table rows themselves never reach the parser
        if not state.seen_title:
            state.seen_title = True
            return
        state.chapter, state.section = title, title
        state.subheading, state.in_pledge_list = None, False
        return
    if _PLEDGE_MARKER.match(title):
        state.in_pledge_list, state.subheading = True, None
        return
    is_subheading = element.level >= 3 or title.endswith(":")
    if state.in_pledge_list and next_element is not None and next_element.kind == "bullet":
        is_subheading = True
    if is_subheading and state.chapter is not None:
        state.subheading = title.rstrip(":").strip()
        return
    state.section, state.subheading, state.in_pledge_list = title, None, False


def _on_bullet(state: _State, element: _Element) -> None:
    if state.chapter is None or state.section is None:
        return
    last = state.units[-1] if state.units else None
    if state.open_unit and last is not None and last.kind == "pledge" and is_bullet_tail(last.text, element.text):
        last.text = f"{last.text} {element.text}"
        return
    state.units.append(_OpenUnit("pledge", element.text, state.chapter, state.section, state.subheading, element.depth))
    state.open_unit = True


def _on_text(state: _State, element: _Element, next_element: _Element | None) -> None:
    text = element.text
    if state.chapter is None:
        # Front matter: keep the sentences (the preamble), drop title lines, logo and signatures.
        if state.seen_title and _ends_complete(text):
            state.units.append(_OpenUnit("passage", text, FRONT_CHAPTER, FRONT_CHAPTER, None))
        return
    assert state.section is not None
    if _PLEDGE_MARKER.match(clean_heading(text)):
        state.in_pledge_list, state.subheading, state.open_unit = True, None, False
        return
    last = state.units[-1] if state.units else None
    if state.open_unit and last is not None and not _ends_complete(last.text) and text[:1].islower():
        last.text = f"{last.text} {text}"
        return
    bold_line = element.text.startswith("**") or text != clean_heading(text)
    if state.in_pledge_list and (bold_line or _looks_like_plain_subheading(text, next_element)):
        state.subheading, state.open_unit = clean_heading(text).rstrip(":").strip(), False
        return
    state.units.append(_OpenUnit("passage", text, state.chapter, state.section, state.subheading))
    state.open_unit = True


def _build_tree(units: list[_OpenUnit], meta: DocumentMeta) -> Document:
    counters: dict[str, int] = defaultdict(int)
    numbers = {"pledge": 0, "passage": 0}
    chapters: dict[str, dict[str, list[Unit]]] = {}
    for open_unit in units:
        chapter_slug = slugify(open_unit.chapter)
        section_slug = slugify(open_unit.section)
        group = f"{chapter_slug}/{section_slug}"
        if chapter_slug == section_slug:
            group = chapter_slug
        if open_unit.kind == "pledge":
            if open_unit.subheading:
                group = f"{group}/{slugify(open_unit.subheading)}"
            counters[group] += 1
            local = str(counters[group])
        else:
            counters[group + "#p"] += 1
            local = f"p{counters[group + '#p']}"
        numbers[open_unit.kind] += 1
        prefix = f"{meta.id_prefix}/" if meta.id_prefix else ""
        unit = Unit(
            id=f"{prefix}{group}/{local}",
            kind=open_unit.kind,
            text=open_unit.text,
            doc_id=meta.doc_id,
            chapter=open_unit.chapter,
            section=open_unit.section,
            subheading=open_unit.subheading,
            number=numbers[open_unit.kind],
            depth=open_unit.depth,
        )
        chapters.setdefault(open_unit.chapter, {}).setdefault(open_unit.section, []).append(unit)
    return Document(
        meta=meta,
        chapters=tuple(
            Chapter(
                title=chapter,
                slug=slugify(chapter),
                sections=tuple(
                    Section(title=section, slug=slugify(section), units=tuple(section_units))
                    for section, section_units in sections.items()
                ),
            )
            for chapter, sections in chapters.items()
        ),
    )
