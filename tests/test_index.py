"""Index build/save/load with the fake embedder: manifest, staleness, corruption, failed builds, no pickle."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from assistant.core import Assistant
from assistant.corpus import Corpus, load_corpus
from assistant.embeddings import HashingEmbedder, VectorEmbedder, make_embedder
from assistant.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from assistant.index import (
    CURRENT,
    FORMAT_VERSION,
    LOCK_FILE,
    RETRIEVAL_TEXT_VERSION,
    build_index,
    current_build,
    load_index,
)
from assistant.settings import FAKE_MODEL, Settings
from tests.conftest import PROTECTED_DIRS, REAL_CORPUS_DIR, FakeSettings

BUILD_FILES = {
    "dense.faiss",
    "chunks.json",
    "manifest.json",
    "views.faiss",
    "views.json",
    "themes.faiss",
    "themes.json",
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(REAL_CORPUS_DIR)


@pytest.fixture
def settings(fake_settings: FakeSettings) -> Settings:
    return fake_settings()


@pytest.fixture
def built(settings: Settings, corpus: Corpus) -> Path:
    """A freshly built index; returns its build folder."""
    return build_index(settings, corpus, HashingEmbedder()).path


class ExplodingEmbedder(HashingEmbedder):
    """Fails the way a model can fail half-way through a build."""

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model crashed while embedding")


class Unserialisable:
    """A corpus digest the manifest cannot be written with: the build fails after files are staged."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- round trip and manifest ---------------------------------------------------------------


def test_settings_and_assistant_stay_out_of_the_project_folders(settings: Settings, fake_assistant: Assistant) -> None:
    for path in (settings.index_dir, settings.models_dir, fake_assistant.settings.index_dir):
        assert not any(path.resolve().is_relative_to(p.resolve()) for p in PROTECTED_DIRS)
    assert settings.embedding_model == FAKE_MODEL
    assert isinstance(make_embedder(settings), HashingEmbedder)


def test_build_then_load_round_trip(settings: Settings, corpus: Corpus) -> None:
    built = build_index(settings, corpus, HashingEmbedder())
    loaded = load_index(settings, corpus)
    assert loaded.path == built.path
    assert loaded.chunks == built.chunks
    assert len(loaded.chunks) == 343
    assert loaded.dense.ntotal == len(loaded.chunks)
    assert loaded.dense.d == HashingEmbedder().dimension
    assert loaded.manifest == built.manifest
    # The dense vectors survive the trip.
    query = HashingEmbedder().encode_query("fritidskort").reshape(1, -1)
    assert np.array_equal(built.dense.search(query, 5)[1], loaded.dense.search(query, 5)[1])


def test_manifest_fields(settings: Settings, corpus: Corpus, built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedding_model"] == FAKE_MODEL
    assert manifest["dimension"] == HashingEmbedder().dimension
    assert manifest["corpus_sha256"] == corpus.sha256
    assert len(manifest["corpus_sha256"]) == 64
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["retrieval_text_version"] == RETRIEVAL_TEXT_VERSION
    assert manifest["chunk_max_tokens"] == settings.chunk_max_tokens
    assert manifest["n_chunks"] == 343
    assert manifest["expansions_sha256"] == corpus.expansions_sha256
    assert manifest["themes_sha256"] == corpus.themes_sha256 and len(corpus.themes_sha256) == 64
    assert len(manifest["expansions_sha256"]) == 64
    assert manifest["files"] == {name: _sha256(built / name) for name in (set(BUILD_FILES) - {"manifest.json"})}


def test_build_layout_and_current_pointer(settings: Settings, built: Path) -> None:
    assert (settings.index_dir / CURRENT).read_text(encoding="utf-8").strip() == built.name
    assert current_build(settings) == built
    assert {p.name for p in built.iterdir()} == BUILD_FILES
    assert built.name.startswith("build-")


def test_rebuild_replaces_the_previous_build(settings: Settings, corpus: Corpus, built: Path) -> None:
    second = build_index(settings, corpus, HashingEmbedder()).path
    assert second != built
    assert not built.exists()
    assert sorted(p.name for p in settings.index_dir.iterdir()) == sorted([CURRENT, LOCK_FILE, second.name])
    assert load_index(settings, corpus).path == second


# --- missing, stale, corrupt ---------------------------------------------------------------


def test_missing_index(settings: Settings, corpus: Corpus) -> None:
    with pytest.raises(IndexMissingError, match="python -m assistant index"):
        load_index(settings, corpus)


def test_corpus_change_makes_the_index_stale(fake_settings: FakeSettings, tmp_path: Path) -> None:
    folder = tmp_path / "corpus-copy"
    shutil.copytree(REAL_CORPUS_DIR, folder)
    settings = fake_settings(corpus_dir=folder)
    build_index(settings, load_corpus(folder), HashingEmbedder())
    source = folder / "leangen-erklaeringen.txt"
    source.write_text(
        source.read_text(encoding="utf-8").replace("bygging av Brundalsforbindelsen", "bygging av Nyveien"),
        encoding="utf-8",
    )
    with pytest.raises(IndexStaleError, match="corpus_sha256"):
        load_index(settings, load_corpus(folder))


@pytest.mark.parametrize(
    "change",
    [{"embedding_model": "some-org/another-model"}, {"chunk_max_tokens": 120}],
    ids=["embedding-model", "chunk-max-tokens"],
)
def test_settings_change_makes_the_index_stale(
    fake_settings: FakeSettings, corpus: Corpus, built: Path, change: dict[str, object]
) -> None:
    with pytest.raises(IndexStaleError, match=next(iter(change))):
        load_index(fake_settings(**change), corpus)


def test_stale_index_is_rebuilt_by_the_assistant_when_allowed(fake_settings: FakeSettings, built: Path) -> None:
    settings = fake_settings(chunk_max_tokens=120)
    assistant = Assistant(settings)
    index = assistant.index
    assert index.path != built
    assert index.manifest.chunk_max_tokens == 120


def test_stale_index_is_an_error_when_auto_build_is_off(fake_settings: FakeSettings, built: Path) -> None:
    assistant = Assistant(fake_settings(chunk_max_tokens=120, auto_build_index=False))
    with pytest.raises(IndexStaleError):
        assistant.search("sykkel")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_chunk_text(path: Path) -> None:
    chunks = json.loads(path.read_text(encoding="utf-8"))
    chunks[0]["text"] = "Byrådet vil senke skatten til null."
    path.write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("dense.faiss", _truncate),
        ("dense.faiss", _flip_a_byte),
        ("chunks.json", _truncate),
        ("chunks.json", _edit_chunk_text),
        ("dense.faiss", Path.unlink),
    ],
    ids=["faiss-truncated", "faiss-altered", "chunks-truncated", "chunks-edited", "faiss-deleted"],
)
def test_damaged_files_are_refused(
    settings: Settings, corpus: Corpus, built: Path, name: str, damage: Callable[[Path], None]
) -> None:
    damage(built / name)
    with pytest.raises(IndexCorruptError, match=name):
        load_index(settings, corpus)


def test_unreadable_manifest_is_corrupt(settings: Settings, corpus: Corpus, built: Path) -> None:
    (built / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest"):
        load_index(settings, corpus)


def test_current_pointing_at_a_missing_folder_is_corrupt(settings: Settings, corpus: Corpus, built: Path) -> None:
    (settings.index_dir / CURRENT).write_text("build-20000101-000000-000000", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="build-20000101-000000-000000"):
        load_index(settings, corpus)


def test_corrupt_index_is_rebuilt_by_the_assistant(settings: Settings, built: Path) -> None:
    _truncate(built / "chunks.json")
    assistant = Assistant(settings)
    assert len(assistant.index.chunks) == 343
    assert load_index(settings, assistant.corpus).path == assistant.index.path


# --- failed builds -------------------------------------------------------------------------


def test_failed_embedding_keeps_the_previous_index(settings: Settings, corpus: Corpus, built: Path) -> None:
    before = {p.name: p.read_bytes() for p in built.iterdir()}
    with pytest.raises(RuntimeError, match="model crashed"):
        build_index(settings, corpus, ExplodingEmbedder())
    assert load_index(settings, corpus).path == built
    assert {p.name: p.read_bytes() for p in built.iterdir()} == before
    assert list(settings.index_dir.glob("*.partial")) == []


def test_build_failing_after_staging_leaves_no_partial_folder(settings: Settings, corpus: Corpus, built: Path) -> None:
    broken = replace(corpus, sha256=Unserialisable())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_index(settings, broken, HashingEmbedder())
    assert list(settings.index_dir.glob("*.partial")) == []
    assert sorted(p.name for p in settings.index_dir.iterdir()) == sorted([CURRENT, LOCK_FILE, built.name])
    assert load_index(settings, corpus).path == built


def test_failed_first_build_leaves_no_index(settings: Settings, corpus: Corpus) -> None:
    with pytest.raises(RuntimeError):
        build_index(settings, corpus, ExplodingEmbedder())
    assert list(settings.index_dir.glob("*")) == []
    with pytest.raises(IndexMissingError):
        load_index(settings, corpus)


# --- no pickle -----------------------------------------------------------------------------

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def test_no_pickle_files_are_written(settings: Settings, corpus: Corpus, session_cache_dir: Path) -> None:
    assistant = Assistant(settings)
    assistant.build_index()
    assistant.ask("Hva vil byrådet gjøre med fastlegeordningen?")
    load_index(settings, corpus)
    for root in (settings.index_dir, session_cache_dir):
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files
        assert [p for p in files if p.suffix in {".pkl", ".pickle", ".joblib", ".npy", ".npz"}] == []
        assert [p for p in files if p.read_bytes()[:2] in _PICKLE_MAGIC] == []
    # Everything in the build folder is JSON apart from FAISS's own format.
    build = current_build(settings)
    for name in ("chunks.json", "manifest.json"):
        json.loads((build / name).read_text(encoding="utf-8"))
    assert (build / "dense.faiss").read_bytes()[:4] == b"IxFI"


def test_chunks_json_round_trips_every_field(built: Path) -> None:
    raw = json.loads((built / "chunks.json").read_text(encoding="utf-8"))
    fields = set(raw[0])
    assert fields == {
        "id",
        "unit_id",
        "kind",
        "text",
        "retrieval_text",
        "chapter",
        "section",
        "subheading",
        "doc_id",
        "number",
        "n_tokens",
        "search_keywords",
        "search_questions",
    }


class WrongDimensionEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(dimension=64)


def test_dimension_comes_from_the_embedder(settings: Settings, corpus: Corpus) -> None:
    index = build_index(settings, corpus, WrongDimensionEmbedder())
    assert index.manifest.dimension == 64
    assert load_index(settings, corpus).dense.d == 64


def test_manifest_is_plain_json_of_the_dataclass(settings: Settings, corpus: Corpus) -> None:
    index = build_index(settings, corpus, HashingEmbedder())
    on_disk = json.loads((index.path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == asdict(index.manifest)


def test_embedder_protocol_is_used_for_queries() -> None:
    embedder: VectorEmbedder = HashingEmbedder()
    vector = embedder.encode_query("fritidskort for ungdom")
    assert vector.dtype == np.float32
    assert vector.shape == (HashingEmbedder().dimension,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0)
    assert float(np.linalg.norm(embedder.encode_query("og i på"))) == 0.0


def test_concurrent_builds_into_one_folder_are_serialised(fake_settings: FakeSettings) -> None:
    """Two builds at once (two threads; the lock is an OS file lock, so processes too) both finish,
    and the folder ends with one complete build that loads."""
    from concurrent.futures import ThreadPoolExecutor

    settings = fake_settings()
    corpus = load_corpus(settings.corpus_dir)
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = list(pool.map(lambda _: build_index(settings, corpus, HashingEmbedder()), range(2)))
    assert all(b.path.name.startswith("build-") for b in builds)
    remaining = [p for p in settings.index_dir.iterdir() if p.is_dir()]
    assert len(remaining) == 1 and not remaining[0].name.endswith(".partial")
    assert load_index(settings, corpus).path == remaining[0]
