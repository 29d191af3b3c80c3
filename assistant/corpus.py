"""Load the documents in the corpus folder (I/O edge of the parser)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import CorpusError
from assistant.parsing import parse_document
from assistant.types import Document, DocumentMeta, Unit

META_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    sha256: str

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for d in self.documents for u in d.units)

    @property
    def pledges(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.kind == "pledge")

    def unit(self, unit_id: str) -> Unit:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(unit_id)


def _read_meta(path: Path) -> DocumentMeta:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return DocumentMeta(
            doc_id=raw["doc_id"],
            title=raw["title"],
            period=raw.get("period", ""),
            parties=tuple(raw.get("parties", ())),
            kind=raw.get("kind", ""),
            source_file=raw["source_file"],
            subtitle=raw.get("subtitle", ""),
            origin=raw.get("origin", ""),
            id_prefix=raw.get("id_prefix", ""),
            strip_lines=tuple(raw.get("strip_lines", ())),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorpusError(
            f"Metadata file {path} is unreadable or lacks a field ({exc}); "
            "it needs at least doc_id, title and source_file."
        ) from exc


def load_corpus(corpus_dir: Path) -> Corpus:
    """Parse every document that has a `<name>.meta.json` beside it."""
    meta_files = sorted(corpus_dir.glob(f"*{META_SUFFIX}"))
    if not meta_files:
        raise CorpusError(f"No documents in {corpus_dir}: expected a text file with a '<name>{META_SUFFIX}' beside it.")
    digest = hashlib.sha256()
    documents = []
    for meta_file in meta_files:
        meta = _read_meta(meta_file)
        source = corpus_dir / meta.source_file
        try:
            data = source.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"Cannot read {source} as UTF-8 text: {exc}") from exc
        digest.update(meta_file.read_bytes())
        digest.update(data)
        documents.append(parse_document(text, meta))
    ids = [u.id for d in documents for u in d.units]
    if len(ids) != len(set(ids)):
        raise CorpusError("Two documents produce the same unit ids: give one an id_prefix in its metadata.")
    return Corpus(documents=tuple(documents), sha256=digest.hexdigest())
