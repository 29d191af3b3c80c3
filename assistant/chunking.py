"""Units -> chunks. A pledge is one chunk; prose is cut into token-bounded pieces at sentences."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from assistant.text import split_sentences
from assistant.types import Chunk, Expansion, Unit

TokenCounter = Callable[[str], int]


def retrieval_text(unit: Unit, text: str) -> str:
    """The text that is embedded and searched: heading path, then the words of the platform.

    A pledge completes "Byrådet vil …", so it is searched in that form; the text shown and cited
    stays the verbatim bullet.
    """
    body = f"Byrådet vil {text}" if unit.kind == "pledge" else text
    return f"{unit.heading_path}: {body}"


def _pack(parts: Iterable[str], max_tokens: int, count: TokenCounter) -> list[str]:
    """Greedily join consecutive parts with spaces into pieces of at most `max_tokens`."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current} {part}".strip()
        if current and count(candidate) > max_tokens:
            pieces.append(current)
            current = part
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


def _pieces(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    if count(text) <= max_tokens:
        return [text]
    sentences: list[str] = []
    for sentence in split_sentences(text):
        # A sentence longer than the bound is cut between words.
        too_long = count(sentence) > max_tokens
        sentences.extend(_pack(sentence.split(), max_tokens, count) if too_long else [sentence])
    return _pack(sentences, max_tokens, count)


def chunk_units(
    units: Iterable[Unit],
    max_tokens: int,
    count: TokenCounter,
    expansions: Mapping[str, Expansion] | None = None,
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for unit in units:
        pieces = [unit.text] if unit.kind == "pledge" else _pieces(unit.text, max_tokens, count)
        expansion = (expansions or {}).get(unit.id)
        for index, piece in enumerate(pieces, start=1):
            chunks.append(
                Chunk(
                    id=unit.id if len(pieces) == 1 else f"{unit.id}#{index}",
                    unit_id=unit.id,
                    kind=unit.kind,
                    text=piece,
                    retrieval_text=retrieval_text(unit, piece),
                    chapter=unit.chapter,
                    section=unit.section,
                    subheading=unit.subheading,
                    doc_id=unit.doc_id,
                    number=unit.number,
                    n_tokens=count(piece),
                    search_keywords=" ".join(expansion.terms) if expansion else "",
                    search_questions=" ".join(expansion.queries) if expansion else "",
                )
            )
    return chunks
