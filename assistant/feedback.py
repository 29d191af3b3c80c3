"""Feedback on answers (thumbs up/down, optional comment), kept in a local SQLite database.

One connection per call, WAL journal and a generous busy timeout: several browser sessions
(threads) and several app processes can write at once without losing a row. Nothing here
depends on Streamlit; the CLI exports with `export_feedback`.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from assistant.errors import AssistantError

#: Environment variable that moves the database (tests, deployments).
#: How long a writer waits for another writer's lock before giving up (seconds).
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")

#: Column order of the CSV export (and the keys of a JSON line).
FIELDS = (
    "id",
    "created_at",
    "updated_at",
    "rating",
    "comment",
    "question",
    "answer",
    "citation_ids",
    "refused",
    "backend",
    "corpus_version",
    "session_id",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    rating         INTEGER NOT NULL CHECK (rating IN (0, 1)),
    comment        TEXT    NOT NULL DEFAULT '',
    question       TEXT    NOT NULL,
    answer         TEXT    NOT NULL,
    citation_ids   TEXT    NOT NULL DEFAULT '[]',
    refused        INTEGER NOT NULL DEFAULT 0,
    backend        TEXT    NOT NULL DEFAULT '',
    corpus_version TEXT    NOT NULL DEFAULT '',
    session_id     TEXT    NOT NULL DEFAULT ''
)
"""


class FeedbackError(AssistantError):
    code = "feedback_error"


@dataclass(frozen=True)
class FeedbackRecord:
    """One stored piece of feedback. `rating` is 1 for thumbs up, 0 for thumbs down."""

    id: int
    created_at: str
    updated_at: str
    rating: int
    comment: str
    question: str
    answer: str
    citation_ids: tuple[str, ...]
    refused: bool
    backend: str
    corpus_version: str
    session_id: str

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["citation_ids"] = list(self.citation_ids)
        return row

    def to_csv_row(self) -> dict[str, Any]:
        row = self.to_json()
        row["citation_ids"] = " ".join(self.citation_ids)
        row["refused"] = int(self.refused)
        return row


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _check_rating(rating: int) -> int:
    if rating not in (0, 1):
        raise ValueError(f"rating must be 0 (thumbs down) or 1 (thumbs up), not {rating!r}")
    return rating


class FeedbackStore:
    """Feedback rows in SQLite at `path` (created with its folder on first use)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._ready = False
        self._ready_lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode; writers open their own `BEGIN IMMEDIATE`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise FeedbackError(f"Kan ikke åpne tilbakemeldingsdatabasen {self.path}: {exc}") from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            connection.row_factory = sqlite3.Row
            self._ensure_schema(connection)
            yield connection
        except sqlite3.Error as exc:
            raise FeedbackError(f"Tilbakemeldingsdatabasen {self.path} svarte med en feil: {exc}") from exc
        finally:
            connection.close()

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            # WAL is a property of the database file: set once, every later connection uses it.
            # Switching to it needs a moment alone with the file, and SQLite answers "database is
            # locked" at once instead of waiting when several processes create the file together.
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        connection.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._ready = True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # --- writing -----------------------------------------------------------------------------

    def add(
        self,
        *,
        rating: int,
        question: str,
        answer: str,
        citation_ids: Sequence[str] = (),
        comment: str = "",
        refused: bool = False,
        backend: str = "",
        corpus_version: str = "",
        session_id: str = "",
        created_at: str | None = None,
    ) -> int:
        """Store one piece of feedback; returns its row id."""
        stamp = created_at or _now()
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO feedback (created_at, updated_at, rating, comment, question, answer, citation_ids,"
                " refused, backend, corpus_version, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stamp,
                    stamp,
                    _check_rating(rating),
                    comment,
                    question,
                    answer,
                    json.dumps(list(citation_ids), ensure_ascii=False),
                    int(refused),
                    backend,
                    corpus_version,
                    session_id,
                ),
            )
            row_id = cursor.lastrowid
        assert row_id is not None
        return row_id

    def update(self, row_id: int, *, rating: int | None = None, comment: str | None = None) -> bool:
        """Change the rating and/or comment of a row; False when the row does not exist."""
        changes: dict[str, Any] = {}
        if rating is not None:
            changes["rating"] = _check_rating(rating)
        if comment is not None:
            changes["comment"] = comment
        changes["updated_at"] = _now()
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self._write() as connection:
            cursor = connection.execute(
                # The column names are ours, never user input.
                f"UPDATE feedback SET {assignments} WHERE id = ?",
                (*changes.values(), row_id),
            )
            return cursor.rowcount == 1

    def delete(self, row_id: int) -> bool:
        """Remove a row (the user took the thumb back); False when it did not exist."""
        with self._write() as connection:
            return connection.execute("DELETE FROM feedback WHERE id = ?", (row_id,)).rowcount == 1

    # --- reading -----------------------------------------------------------------------------

    def all(self) -> list[FeedbackRecord]:
        """Every row, oldest first."""
        with self._connect() as connection:
            rows = connection.execute(f"SELECT {', '.join(FIELDS)} FROM feedback ORDER BY id").fetchall()
        return [_record(row) for row in rows]

    def get(self, row_id: int) -> FeedbackRecord | None:
        with self._connect() as connection:
            row = connection.execute(f"SELECT {', '.join(FIELDS)} FROM feedback WHERE id = ?", (row_id,)).fetchone()
        return _record(row) if row is not None else None

    def count(self) -> int:
        with self._connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    # --- export ------------------------------------------------------------------------------

    def export_csv(self, out: TextIO) -> int:
        """Write every row as CSV (header first); returns the number of rows."""
        records = self.all()
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(record.to_csv_row())
        return len(records)

    def export_jsonl(self, out: TextIO) -> int:
        """Write every row as one JSON object per line; returns the number of rows."""
        records = self.all()
        for record in records:
            out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        return len(records)


def _record(row: sqlite3.Row) -> FeedbackRecord:
    try:
        ids = json.loads(row["citation_ids"])
    except ValueError:
        ids = []
    return FeedbackRecord(
        id=int(row["id"]),
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"]),
        rating=int(row["rating"]),
        comment=str(row["comment"]),
        question=str(row["question"]),
        answer=str(row["answer"]),
        citation_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        refused=bool(row["refused"]),
        backend=str(row["backend"]),
        corpus_version=str(row["corpus_version"]),
        session_id=str(row["session_id"]),
    )


def export_feedback(path: Path | str, fmt: str, out: TextIO | Path | str) -> int:
    """Export the database at `path` (the setting `feedback_db`) as `fmt` ('csv' or 'jsonl') to `out`.

    `out` is an open text stream (e.g. sys.stdout) or a file path. Returns the number of rows.
    For `python -m assistant feedback export --format csv|jsonl`.
    """
    if fmt not in EXPORT_FORMATS:
        raise FeedbackError(f"Ukjent eksportformat «{fmt}». Gyldige formater: {', '.join(EXPORT_FORMATS)}.")
    db = Path(path)
    if not db.is_file():
        raise FeedbackError(f"Fant ingen tilbakemeldingsdatabase i {db}. Ingen har gitt tilbakemelding ennå.")
    store = FeedbackStore(db)
    if isinstance(out, (str, Path)):
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="") as handle:
            return store.export_csv(handle) if fmt == "csv" else store.export_jsonl(handle)
    return store.export_csv(out) if fmt == "csv" else store.export_jsonl(out)
