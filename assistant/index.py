"""Build, save and load the search index: FAISS vectors + chunks (JSON) + manifest. No pickle.

Layout: `index/CURRENT` names the live build folder `index/build-<time>/` holding `dense.faiss`,
`chunks.json`, `themes.faiss` + `themes.json` (the theme index, embedded), `views.faiss` +
`views.json` (the search expansions' questions, embedded as
questions, each row owned by a chunk) and `manifest.json`. A build is written to its own folder
and `CURRENT` is replaced atomically last, so a build that dies half-way leaves the previous index
in use. The BM25 leg is rebuilt from the chunks at load time (milliseconds for a few hundred
chunks), so nothing derived from user-swappable files is deserialised beyond JSON and FAISS's own
format.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from assistant.chunking import chunk_units
from assistant.corpus import Corpus
from assistant.embeddings import VectorEmbedder
from assistant.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from assistant.settings import Settings
from assistant.text import Decompounder, corpus_vocabulary
from assistant.tokens import count_tokens
from assistant.types import Chunk, Theme

FORMAT_VERSION = 5
# Bump when what is embedded changes (the retrieval text template, chunking rules).
RETRIEVAL_TEXT_VERSION = 1
CURRENT = "CURRENT"
LOCK_FILE = ".build.lock"
FILES = ("dense.faiss", "chunks.json", "views.faiss", "views.json", "themes.faiss", "themes.json")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Manifest:
    format_version: int
    embedding_model: str
    dimension: int
    corpus_sha256: str
    expansions_sha256: str
    themes_sha256: str
    retrieval_text_version: int
    chunk_max_tokens: int
    n_chunks: int
    files: dict[str, str]
    built_at: str
    build_seconds: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        manifest = cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        if not isinstance(manifest.files, dict) or not all(isinstance(v, str) for v in manifest.files.values()):
            raise TypeError("'files' must map file names to sha256 checksums")
        return manifest


@dataclass
class SearchIndex:
    """A loaded index: chunks, dense vectors and the lexical leg built from the chunks."""

    chunks: list[Chunk]
    dense: faiss.Index
    manifest: Manifest
    path: Path
    #: Embedded expansion questions; row r belongs to chunk `view_owner[r]`.
    views: faiss.Index
    view_owner: np.ndarray
    #: The theme index, embedded: row r is the theme `theme_ids[r]` (its name, description and names).
    themes: faiss.Index | None = None
    theme_ids: tuple[str, ...] = ()
    bm25: bm25s.BM25 = field(init=False)
    decompounder: Decompounder = field(init=False)

    def __post_init__(self) -> None:
        self.decompounder = Decompounder(corpus_vocabulary(c.retrieval_text for c in self.chunks))
        self.bm25 = bm25s.BM25()
        self.bm25.index(
            [self.decompounder.terms(f"{c.retrieval_text} {c.search_terms}") or [""] for c in self.chunks],
            show_progress=False,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    return asdict(chunk)


def _chunk_from_json(raw: dict[str, Any]) -> Chunk:
    return Chunk(**{k: raw[k] for k in Chunk.__dataclass_fields__})


def expected_identity(settings: Settings, corpus: Corpus) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "embedding_model": settings.embedding_model,
        "corpus_sha256": corpus.sha256,
        "expansions_sha256": corpus.expansions_sha256,
        "themes_sha256": corpus.themes_sha256,
        "retrieval_text_version": RETRIEVAL_TEXT_VERSION,
        "chunk_max_tokens": settings.chunk_max_tokens,
    }


def build_index(
    settings: Settings, corpus: Corpus, embedder: VectorEmbedder, progress: Progress | None = None
) -> SearchIndex:
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    chunks = chunk_units(
        corpus.units,
        settings.chunk_max_tokens,
        lambda text: count_tokens(text, settings.cache_dir),
        corpus.expansions,
    )
    say(f"Embedding {len(chunks)} chunks with {embedder.name} …")
    vectors = embedder.encode_passages([c.retrieval_text for c in chunks])
    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(vectors)
    view_rows: list[dict[str, Any]] = [
        {"chunk": position, "text": query}
        for position, chunk in enumerate(chunks)
        for query in (corpus.expansions[chunk.unit_id].queries if chunk.unit_id in corpus.expansions else ())
    ]
    if view_rows:
        say(f"Embedding {len(view_rows)} search-expansion questions …")
    views = faiss.IndexFlatIP(vectors.shape[1])
    if view_rows:
        views.add(embedder.encode_queries([str(row["text"]) for row in view_rows]))
    themes = faiss.IndexFlatIP(vectors.shape[1])
    theme_ids = [theme.id for theme in corpus.themes]
    if theme_ids:
        say(f"Embedding {len(theme_ids)} themes …")
        themes.add(embedder.encode_passages([theme_text(theme) for theme in corpus.themes]))

    root = settings.index_dir
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / LOCK_FILE):
        build_dir = root / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
        staging = build_dir.with_name(build_dir.name + ".partial")
        staging.mkdir()
        try:
            faiss.write_index(dense, str(staging / "dense.faiss"))
            (staging / "chunks.json").write_text(
                json.dumps([_chunk_to_json(c) for c in chunks], ensure_ascii=False, indent=0), encoding="utf-8"
            )
            faiss.write_index(views, str(staging / "views.faiss"))
            (staging / "views.json").write_text(json.dumps(view_rows, ensure_ascii=False, indent=0), encoding="utf-8")
            faiss.write_index(themes, str(staging / "themes.faiss"))
            (staging / "themes.json").write_text(json.dumps(theme_ids, ensure_ascii=False), encoding="utf-8")
            manifest = Manifest(
                **expected_identity(settings, corpus),
                dimension=int(vectors.shape[1]),
                n_chunks=len(chunks),
                files={name: _sha256(staging / name) for name in FILES},
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                build_seconds=round(time.perf_counter() - started, 2),
            )
            (staging / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
            staging.rename(build_dir)
            pointer = root / f"{CURRENT}.tmp"
            pointer.write_text(build_dir.name, encoding="utf-8")
            pointer.replace(root / CURRENT)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # Under the lock no other build is running, so every other build folder (an older index,
        # or the .partial of a build that was killed) can go.
        _remove_old_builds(root, keep=build_dir.name)
    say(f"Index written to {build_dir} ({len(chunks)} chunks, {manifest.build_seconds:.1f} s).")
    return SearchIndex(
        chunks=chunks,
        dense=dense,
        manifest=manifest,
        path=build_dir,
        views=views,
        view_owner=_owners(view_rows),
        themes=themes,
        theme_ids=tuple(theme_ids),
    )


def theme_text(theme: Theme) -> str:
    """What a theme is embedded as: its name, what it covers and what people call it."""
    return f"{theme.name}: {theme.description} ({', '.join(theme.names)})"


def _owners(view_rows: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([int(row["chunk"]) for row in view_rows], dtype=np.int64)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One build at a time per index folder, across threads and processes (an OS file lock)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_old_builds(root: Path, keep: str) -> None:
    for old in root.glob("build-*"):
        if old.is_dir() and old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def current_build(settings: Settings) -> Path:
    pointer = settings.index_dir / CURRENT
    if not pointer.exists():
        raise IndexMissingError(f"No index in {settings.index_dir}. Build it with `python -m assistant index`.")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(
            f"The index pointer {pointer} is unreadable ({exc}). Rebuild with `python -m assistant index`."
        ) from exc
    build_dir = settings.index_dir / name
    if not name or "/" in name or not build_dir.is_dir():
        raise IndexCorruptError(
            f"The index pointer names {build_dir.name}, which is missing. Rebuild with `python -m assistant index`."
        )
    return build_dir


def read_manifest(build_dir: Path) -> Manifest:
    try:
        raw = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))
        if isinstance(raw, dict) and raw.get("format_version") != FORMAT_VERSION:
            raise IndexStaleError(
                f"The index in {build_dir} has format {raw.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}. Rebuild it with `python -m assistant index`."
            )
        return Manifest.from_json(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"The index manifest in {build_dir} is unreadable ({exc}). Rebuild with `python -m assistant index`."
        ) from exc


def check_fresh(manifest: Manifest, settings: Settings, corpus: Corpus) -> None:
    expected = expected_identity(settings, corpus)
    stale = [k for k, v in expected.items() if getattr(manifest, k) != v]
    if stale:
        raise IndexStaleError(
            f"The index was built for other inputs ({', '.join(stale)} changed). "
            "Rebuild it with `python -m assistant index`."
        )


def load_index(settings: Settings, corpus: Corpus) -> SearchIndex:
    """Load the live index, refusing one that is stale or whose files do not match the manifest."""
    build_dir = current_build(settings)
    manifest = read_manifest(build_dir)
    check_fresh(manifest, settings, corpus)
    for name in FILES:
        path = build_dir / name
        if not path.exists() or _sha256(path) != manifest.files.get(name):
            raise IndexCorruptError(
                f"The index file {path} is missing or damaged (checksum mismatch). "
                "Rebuild with `python -m assistant index`."
            )
    try:
        dense = faiss.read_index(str(build_dir / "dense.faiss"))
        raw_chunks = json.loads((build_dir / "chunks.json").read_text(encoding="utf-8"))
        chunks = [_chunk_from_json(raw) for raw in raw_chunks]
        views = faiss.read_index(str(build_dir / "views.faiss"))
        view_owner = _owners(json.loads((build_dir / "views.json").read_text(encoding="utf-8")))
        themes = faiss.read_index(str(build_dir / "themes.faiss"))
        theme_ids = tuple(str(t) for t in json.loads((build_dir / "themes.json").read_text(encoding="utf-8")))
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"Cannot read the index in {build_dir} ({exc}). Rebuild it.") from exc
    consistent = (
        dense.ntotal == len(chunks)
        and dense.d == manifest.dimension
        and views.ntotal == len(view_owner)
        and (views.ntotal == 0 or views.d == manifest.dimension)
        and bool(np.all((view_owner >= 0) & (view_owner < len(chunks))))
        and themes.ntotal == len(theme_ids)
    )
    if not consistent:
        raise IndexCorruptError(f"The index in {build_dir} is inconsistent. Rebuild it.")
    return SearchIndex(
        chunks=chunks,
        dense=dense,
        manifest=manifest,
        path=build_dir,
        views=views,
        view_owner=view_owner,
        themes=themes,
        theme_ids=theme_ids,
    )
