"""The feedback store: SQLite in WAL mode, safe under many threads and processes, CSV/JSONL export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from assistant.feedback import (
    FIELDS,
    FeedbackError,
    FeedbackStore,
    export_feedback,
)
from assistant.settings import PROJECT_ROOT, load_settings


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "nested" / "feedback.sqlite3")


def _add(store: FeedbackStore, **overrides: object) -> int:
    values: dict[str, object] = {
        "rating": 1,
        "question": "Hva vil byrådet gjøre med fastlegeordningen?",
        "answer": "Byrådet vil vurdere forsøk med tverrfaglige fastlegekontor [1].",
        "citation_ids": ["helse-og-eldre/fastlegeordningen/1"],
    }
    values.update(overrides)
    return store.add(**values)  # type: ignore[arg-type]


# --- storing and reading ---------------------------------------------------------------------


def test_add_then_all_round_trips_every_field(store: FeedbackStore) -> None:
    row_id = _add(
        store,
        comment="Bra svar",
        refused=False,
        backend="extractive",
        corpus_version="260b5063",
        session_id="abc",
    )
    [record] = store.all()
    assert record.id == row_id
    assert record.rating == 1
    assert record.question == "Hva vil byrådet gjøre med fastlegeordningen?"
    assert record.answer.endswith("[1].")
    assert record.citation_ids == ("helse-og-eldre/fastlegeordningen/1",)
    assert record.comment == "Bra svar"
    assert (record.refused, record.backend, record.corpus_version, record.session_id) == (
        False,
        "extractive",
        "260b5063",
        "abc",
    )
    created = datetime.fromisoformat(record.created_at)
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert record.updated_at == record.created_at


def test_the_database_and_its_folder_are_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "feedback.sqlite3"
    store = FeedbackStore(path)
    assert not path.exists()
    _add(store)
    assert path.is_file()


def test_the_journal_is_wal(store: FeedbackStore) -> None:
    _add(store)
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_come_back_oldest_first_with_increasing_ids(store: FeedbackStore) -> None:
    ids = [_add(store, question=f"spørsmål {i}") for i in range(5)]
    records = store.all()
    assert [r.id for r in records] == ids == sorted(ids)
    assert [r.question for r in records] == [f"spørsmål {i}" for i in range(5)]
    assert store.count() == 5


def test_update_changes_rating_and_comment(store: FeedbackStore) -> None:
    row_id = _add(store, rating=1)
    assert store.update(row_id, rating=0)
    assert store.update(row_id, comment="Manglet løftet om legevakt")
    record = store.get(row_id)
    assert record is not None
    assert (record.rating, record.comment) == (0, "Manglet løftet om legevakt")
    assert record.updated_at >= record.created_at


def test_update_and_delete_of_a_missing_row_say_so(store: FeedbackStore) -> None:
    assert not store.update(999, rating=1)
    assert not store.delete(999)
    assert store.get(999) is None


def test_delete_removes_the_row(store: FeedbackStore) -> None:
    keep, drop = _add(store), _add(store)
    assert store.delete(drop)
    assert [r.id for r in store.all()] == [keep]


@pytest.mark.parametrize("rating", [-1, 2, 5])
def test_a_rating_is_thumbs_up_or_down(store: FeedbackStore, rating: int) -> None:
    with pytest.raises(ValueError, match="rating"):
        _add(store, rating=rating)
    row_id = _add(store)
    with pytest.raises(ValueError, match="rating"):
        store.update(row_id, rating=rating)


def test_refusals_store_no_citations(store: FeedbackStore) -> None:
    _add(store, rating=0, refused=True, citation_ids=[], answer="Leangen-erklæringen sier ikke noe om dette …")
    [record] = store.all()
    assert record.refused and record.citation_ids == () and record.rating == 0


def test_an_unwritable_location_is_a_feedback_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FeedbackError, match="tilbakemeldingsdatabasen"):
        _add(FeedbackStore(blocker / "feedback.sqlite3"))


# --- export ------------------------------------------------------------------------------------

AWKWARD = 'Hva med «sitat», "anførsel", komma, semikolon; og\nlinjeskift? <b>x</b> 🚲'


def test_export_csv_has_a_header_and_one_row_per_feedback(store: FeedbackStore) -> None:
    _add(store, question=AWKWARD, citation_ids=["a/b/1", "a/b/2"])
    _add(store, rating=0, refused=True, citation_ids=[])
    out = io.StringIO()
    assert store.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == FIELDS
    assert rows[0]["question"] == AWKWARD
    assert rows[0]["citation_ids"] == "a/b/1 a/b/2"
    assert (rows[0]["rating"], rows[0]["refused"]) == ("1", "0")
    assert (rows[1]["rating"], rows[1]["refused"], rows[1]["citation_ids"]) == ("0", "1", "")


def test_export_jsonl_writes_one_object_per_line(store: FeedbackStore) -> None:
    _add(store, question=AWKWARD, citation_ids=["a/b/1", "a/b/2"])
    _add(store, rating=0)
    out = io.StringIO()
    assert store.export_jsonl(out) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) == set(FIELDS)
    assert first["question"] == AWKWARD
    assert first["citation_ids"] == ["a/b/1", "a/b/2"]
    assert first["refused"] is False
    assert "🚲" in lines[0]  # not \u-escaped


def test_export_of_an_empty_store(store: FeedbackStore) -> None:
    out = io.StringIO()
    assert store.export_csv(out) == 0
    assert out.getvalue().strip() == ",".join(FIELDS)
    out = io.StringIO()
    assert store.export_jsonl(out) == 0
    assert out.getvalue() == ""


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_feedback_to_a_stream_and_to_a_file(store: FeedbackStore, tmp_path: Path, fmt: str) -> None:
    _add(store)
    _add(store, rating=0)
    stream = io.StringIO()
    assert export_feedback(store.path, fmt, stream) == 2
    target = tmp_path / "out" / f"feedback.{fmt}"
    assert export_feedback(store.path, fmt, target) == 2
    assert target.read_text(encoding="utf-8") == stream.getvalue()


def test_the_feedback_database_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(_env_file=None).feedback_db == PROJECT_ROOT / "feedback" / "feedback.sqlite3"
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(tmp_path / "x.db"))
    assert load_settings(_env_file=None).feedback_db == tmp_path / "x.db"


def test_export_feedback_refuses_unknown_formats_and_missing_databases(store: FeedbackStore, tmp_path: Path) -> None:
    _add(store)
    with pytest.raises(FeedbackError, match="csv, jsonl"):
        export_feedback(store.path, "xml", io.StringIO())
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(FeedbackError, match="Fant ingen"):
        export_feedback(missing, "csv", io.StringIO())
    assert not missing.exists()


# --- concurrency -------------------------------------------------------------------------------


def test_many_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    n_threads, per_thread = 8, 25
    start = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                row_id = _add(store, question=f"t{worker}-{i}")
                if i % 5 == 0:
                    store.update(row_id, comment=f"c{worker}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    records = store.all()
    assert sorted(r.question for r in records) == sorted(
        f"t{w}-{i}" for w in range(n_threads) for i in range(per_thread)
    )
    assert sum(1 for r in records if r.comment) == n_threads * 5


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from assistant.feedback import FeedbackStore

    db, go, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    store = FeedbackStore(db)  # every process creates the schema itself: that races too
    for i in range(count):
        store.add(rating=i % 2, question=f"{worker}-{i}", answer="svar", citation_ids=[f"id/{worker}/{i}"])
    """
)


def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db, go = tmp_path / "shared.sqlite3", tmp_path / "go"
    n_processes, per_process = 6, 40
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(go), f"p{w}", str(per_process)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(n_processes)
    ]
    try:
        time.sleep(0.5)  # let every interpreter start, so the writes overlap
        go.touch()
        results = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    records = FeedbackStore(db).all()
    assert len(records) == n_processes * per_process
    assert len({r.id for r in records}) == len(records)
    assert sorted(r.question for r in records) == sorted(
        f"p{w}-{i}" for w in range(n_processes) for i in range(per_process)
    )
    assert all(r.citation_ids == (f"id/{r.question.replace('-', '/')}",) for r in records)
