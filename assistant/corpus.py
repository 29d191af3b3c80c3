"""Load the documents in the corpus folder (I/O edge of the parser)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import CorpusError
from assistant.parsing import parse_document
from assistant.types import Document, DocumentMeta, Expansion, Unit

META_SUFFIX = ".meta.json"
#: Folder (inside the corpus folder) of search expansions, `<anything>.jsonl`, one unit a line.
EXPANSIONS_DIR = "expansions"


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    sha256: str
    #: Search expansions by unit id (may be empty: the platform is searchable without them).
    expansions: Mapping[str, Expansion] = field(default_factory=dict)
    expansions_sha256: str = ""

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(u for d in self.documents for u in d.units)

    @property
    def pledges(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.kind == "pledge")

    @property
    def statements(self) -> tuple[Unit, ...]:
        """Commitment sentences of the prose passages: citable alone, not indexed on their own."""
        return tuple(s for d in self.documents for s in d.statements)

    @property
    def citable(self) -> tuple[Unit, ...]:
        """Everything an answer may cite: pledges, passages and their commitment sentences."""
        return self.units + self.statements

    def unit(self, unit_id: str) -> Unit:
        for unit in self.citable:
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
    expansions, expansions_sha256 = load_expansions(corpus_dir / EXPANSIONS_DIR, frozenset(ids))
    return Corpus(
        documents=tuple(documents),
        sha256=digest.hexdigest(),
        expansions=expansions,
        expansions_sha256=expansions_sha256,
    )


def _strings(raw: Any, key: str) -> tuple[str, ...]:
    values = raw.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"'{key}' must be a list of strings")
    return tuple(v.strip() for v in values if v.strip())


def load_expansions(folder: Path, unit_ids: frozenset[str]) -> tuple[dict[str, Expansion], str]:
    """Read the search expansions; every line must name a unit the corpus has, once.

    Returns the expansions by unit id and a digest of the files (part of the index's identity).
    """
    digest = hashlib.sha256()
    expansions: dict[str, Expansion] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            data = path.read_bytes()
            lines = data.decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"Cannot read the search expansions {path} as UTF-8 text: {exc}") from exc
        digest.update(path.name.encode())
        digest.update(data)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name}, line {number}"
            try:
                raw = json.loads(line)
                unit_id = raw["id"]
                expansion = Expansion(unit_id, _strings(raw, "queries"), _strings(raw, "terms"))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise CorpusError(
                    f"Search expansion {where} is malformed ({exc}); it needs "
                    '{"id": "<unit id>", "queries": [...], "terms": [...]}.'
                ) from exc
            if unit_id not in unit_ids:
                raise CorpusError(
                    f"Search expansion {where} names '{unit_id}', which is not a unit of the platform. "
                    "Fix the id (see `python -m assistant search`) or delete the line."
                )
            if unit_id in expansions:
                raise CorpusError(f"Search expansion {where} repeats '{unit_id}'; keep one line per unit.")
            expansions[unit_id] = expansion
    return expansions, digest.hexdigest() if expansions else ""
