"""Load the documents in the corpus folder (I/O edge of the parser)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import CorpusError
from assistant.parsing import parse_document
from assistant.types import Document, DocumentMeta, Expansion, Theme, Unit

META_SUFFIX = ".meta.json"
#: Folder (inside the corpus folder) of search expansions, `<anything>.jsonl`, one unit a line.
EXPANSIONS_DIR = "expansions"
#: Folder (inside the corpus folder) of the theme index, `<anything>.jsonl`, one theme a line.
THEMES_DIR = "themes"


@dataclass(frozen=True)
class Corpus:
    documents: tuple[Document, ...]
    sha256: str
    #: Search expansions by unit id (may be empty: the platform is searchable without them).
    expansions: Mapping[str, Expansion] = field(default_factory=dict)
    expansions_sha256: str = ""
    #: The theme index (may be empty: broad questions then fall back to headings and ranking).
    themes: tuple[Theme, ...] = ()
    themes_sha256: str = ""

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
    citable = frozenset(ids) | {s.id for d in documents for s in d.statements}
    headings = frozenset(u.heading_path for d in documents for u in d.units) | frozenset(
        u.location for d in documents for u in d.units
    )
    themes, themes_sha256 = load_themes(corpus_dir / THEMES_DIR, citable, headings)
    return Corpus(
        documents=tuple(documents),
        sha256=digest.hexdigest(),
        expansions=expansions,
        expansions_sha256=expansions_sha256,
        themes=themes,
        themes_sha256=themes_sha256,
    )


def _strings(raw: Any, key: str) -> tuple[str, ...]:
    values = raw.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"'{key}' must be a list of strings")
    return tuple(v.strip() for v in values if v.strip())


def _jsonl_lines(folder: Path, what: str) -> tuple[list[tuple[str, str]], str]:
    """The non-blank lines of every `*.jsonl` in a folder, each with where it stands ("file, line
    n"), and a digest of the files (part of the index's identity); none when the folder is missing."""
    digest = hashlib.sha256()
    lines: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"Cannot read the {what} {path} as UTF-8 text: {exc}") from exc
        digest.update(path.name.encode())
        digest.update(data)
        lines += [(f"{path.name}, line {n}", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return lines, digest.hexdigest()


def load_expansions(folder: Path, unit_ids: frozenset[str]) -> tuple[dict[str, Expansion], str]:
    """Read the search expansions; every line must name a unit the corpus has, once.

    Returns the expansions by unit id and a digest of the files (part of the index's identity).
    """
    lines, digest = _jsonl_lines(folder, "search expansions")
    expansions: dict[str, Expansion] = {}
    for where, line in lines:
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
    return expansions, digest if expansions else ""


_THEME_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _theme(raw: Any) -> Theme:
    if not isinstance(raw, dict):
        raise TypeError("a theme must be a JSON object")
    theme_id, name, description = raw["id"], raw["name"], raw.get("description", "")
    if not all(isinstance(v, str) for v in (theme_id, name, description)):
        raise TypeError("'id', 'name' and 'description' must be strings")
    if not _THEME_ID.match(theme_id):
        raise ValueError(f"the id '{theme_id}' is not a lower-case slug (a-z, 0-9, hyphens)")
    return Theme(
        id=theme_id,
        name=name.strip(),
        description=description.strip(),
        names=_strings(raw, "names"),
        headings=_strings(raw, "headings"),
        units=_strings(raw, "units"),
    )


def load_themes(folder: Path, citable: frozenset[str], headings: frozenset[str]) -> tuple[tuple[Theme, ...], str]:
    """Read the theme index; every theme needs a name, names and units the corpus has, once.

    Returns the themes in file order and a digest of the files (part of the index's identity)."""
    lines, digest = _jsonl_lines(folder, "theme index")
    themes: dict[str, Theme] = {}
    for where, line in lines:
        try:
            theme = _theme(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(
                f"Theme {where} is malformed ({exc}); it needs "
                '{"id", "name", "description", "names": [...], "headings": [...], "units": [...]}.'
            ) from exc
        problem = _theme_problem(theme, citable, headings)
        if theme.id in themes:
            problem = f"repeats the theme id '{theme.id}'; keep one line per theme"
        if problem:
            raise CorpusError(f"Theme {where} {problem}.")
        themes[theme.id] = theme
    return tuple(themes.values()), digest if themes else ""


def _theme_problem(theme: Theme, citable: frozenset[str], headings: frozenset[str]) -> str:
    """What is wrong with a theme ("" when nothing): the error names it after the file and line."""
    if not theme.name or not theme.names:
        return f"('{theme.id}') needs a name and at least one entry in 'names'"
    if not theme.units:
        return f"('{theme.id}') is empty: list the units that bear on it in 'units'"
    for key in ("names", "units"):
        values = [v.lower() for v in getattr(theme, key)]
        if len(values) != len(set(values)):
            repeated = next(v for v in values if values.count(v) > 1)
            return f"('{theme.id}') lists '{repeated}' twice in '{key}'"
    unknown = [u for u in theme.units if u not in citable]
    if unknown:
        return (
            f"('{theme.id}') names '{unknown[0]}', which is not a unit of the platform. "
            "Fix the id (see `python -m assistant search`) or delete it"
        )
    strange = [h for h in theme.headings if h not in headings]
    if strange:
        return f"('{theme.id}') names the heading '{strange[0]}', which the platform does not have"
    return ""
