"""Structured logs: one JSON line per answered question, the question text only while
`log_questions` is on, a warning with the reason when the model fails, and a formatter whose every
line is valid JSON."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.cli import main
from assistant.composing import REFUSAL
from assistant.core import Assistant
from assistant.errors import InvalidQuestionError
from assistant.fakes import ScriptedChatModel
from assistant.logs import LOGGER_NAME, JsonFormatter, configure_logging
from assistant.settings import FAKE_MODEL
from assistant.types import Answer
from tests.conftest import REAL_CORPUS_DIR

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
ANSWER_FIELDS = {"question_id", "backend", "decision", "refused", "refusal_reason", "timings_ms"}
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
QUESTIONS = {
    "ranked": "fritidskort",
    "theme": "alle løfter om sykkel",
    "heading": "Hva står det om kulturskolen?",
    "refused": "Hva mener byrådet om NATO?",
}


class Captured(logging.Handler):
    """Keeps every record of the assistant's logger, and the JSON line it becomes."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self._json.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [strict_json(line) for line in self.lines]

    def answered(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["event"] == "answered"]


def strict_json(line: str) -> dict[str, Any]:
    """Parse one log line as standard JSON (no NaN/Infinity), on one line."""
    assert "\n" not in line and "\r" not in line

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    entry = json.loads(line, parse_constant=no_constants)
    assert isinstance(entry, dict)
    return entry


@pytest.fixture
def logs() -> Iterator[Captured]:
    logger = logging.getLogger(LOGGER_NAME)
    handler = Captured()
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


@pytest.fixture(scope="module")
def quiet_assistant(fake_assistant: Assistant) -> Assistant:
    """The shared fake index, with `log_questions` off."""
    return Assistant(fake_assistant.settings.model_copy(update={"log_questions": False}))


def generative(base: Assistant, *replies: str | BaseException, **model: Any) -> Assistant:
    """A generative assistant with `base`'s settings and index, whose model says `replies`."""
    return base.derive(backend="openai", chat_model=ScriptedChatModel(replies=list(replies), **model))


def test_one_json_line_per_answered_question(fake_assistant: Assistant, logs: Captured) -> None:
    answers: dict[str, Answer] = {}
    for expected_decision, question in QUESTIONS.items():
        answers[expected_decision] = fake_assistant.ask(question, question_id=f"id-{expected_decision}")
        assert answers[expected_decision].decision == expected_decision
    entries = logs.answered()
    assert [e["question_id"] for e in entries] == [f"id-{d}" for d in QUESTIONS]
    for entry, (decision, answer) in zip(entries, answers.items(), strict=True):
        assert set(entry) >= ANSWER_FIELDS
        assert TIME.match(entry["time"]) and entry["level"] == "info" and entry["logger"] == LOGGER_NAME
        assert entry["backend"] == "extractive"
        assert entry["decision"] == decision
        assert entry["refused"] is answer.refused
        if answer.refused:
            # NATO is a word the platform never uses: the reason says so, not "below the threshold".
            assert entry["refusal_reason"] == "the platform uses none of the question's words"
            assert entry["citations"] == []
        else:
            assert entry["refusal_reason"] is None
            assert entry["citations"] == [c.chunk.unit_id for c in answer.citations]
        assert set(entry["timings_ms"]) == {"retrieve", "answer", "total"}
        assert all(isinstance(v, float | int) and v >= 0 for v in entry["timings_ms"].values())
        assert entry["question"] == QUESTIONS[decision]  # on by default


def test_an_id_is_generated_when_none_is_given(fake_assistant: Assistant, logs: Captured) -> None:
    fake_assistant.ask("fritidskort")
    fake_assistant.ask("fritidskort")
    ids = [e["question_id"] for e in logs.answered()]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)


def test_an_invalid_question_is_not_logged_as_answered(fake_assistant: Assistant, logs: Captured) -> None:
    with pytest.raises(InvalidQuestionError):
        fake_assistant.ask("🚲🚲", question_id="bad")
    assert logs.answered() == []


def test_no_question_text_with_log_questions_off(quiet_assistant: Assistant, logs: Captured) -> None:
    question = "Hvor mye er fritidskortet for ungdomsskoleelever verdt, Zorblax?"
    answer = quiet_assistant.ask(question, question_id="q-off")
    (entry,) = logs.answered()
    assert entry["question_id"] == "q-off"
    assert "question" not in entry
    assert set(entry) >= ANSWER_FIELDS and entry["refused"] is answer.refused
    assert not [line for line in logs.lines if "Zorblax" in line]


def test_no_question_text_with_log_questions_off_in_generative_warnings(
    quiet_assistant: Assistant, logs: Captured
) -> None:
    """Fallbacks, guard warnings and a failed condense step log reasons, not the question."""
    assistant = generative(
        quiet_assistant,
        ConnectionError("Connection refused"),  # condense fails
        "Byrådet vil innføre et fritidskort [1]. Byrådet vil bygge OL-arena [77].",
    )
    question = "og hva med fritidskortet for Zorblax?"
    assistant.ask(question, history=[("Hva gjør byrådet for ungdom?", "…")], question_id="gen-off")
    warnings = [e["event"] for e in logs.entries() if e["level"] == "warning"]
    assert any(w.startswith("condense failed") for w in warnings), warnings
    assert any(w.startswith("removed 1 citation(s)") for w in warnings), warnings
    (entry,) = logs.answered()
    assert "question" not in entry
    assert not [line for line in logs.lines if "Zorblax" in line]


def test_question_text_is_logged_cleaned_by_default(fake_assistant: Assistant, logs: Captured) -> None:
    fake_assistant.ask("  fritids\u00adkort\x00 \u202e ", question_id="clean")
    (entry,) = logs.answered()
    assert entry["question"] == "fritidskort"


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("Connection refused"), TimeoutError("timed out after 60 s"), ValueError("malformed output")],
    ids=["connection", "timeout", "malformed"],
)
def test_a_model_failure_logs_a_warning_with_the_reason(
    fake_assistant: Assistant, logs: Captured, failure: BaseException
) -> None:
    answer = generative(fake_assistant, failure).ask("fritidskort", question_id="down")
    reason = f"{type(failure).__name__}: {failure}"
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"model call failed, extractive fallback: {reason}"]
    (entry,) = logs.answered()
    assert entry["question_id"] == "down"
    assert entry["backend"] == "extractive" and answer.backend == "extractive"
    assert reason in entry["fallback"]
    assert "model" in entry["timings_ms"] and "total" in entry["timings_ms"]


def test_a_stream_cut_off_midway_logs_a_warning(fake_assistant: Assistant, logs: Captured) -> None:
    assistant = generative(
        fake_assistant, "Byrådet vil innføre et fritidskort på 2000 kroner [1].", fail_after_pieces=2
    )
    assistant.ask("fritidskort")
    warnings = [e for e in logs.entries() if e["level"] == "warning"]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0]["event"] and "closed the stream" in warnings[0]["event"]
    assert logs.answered()[0]["fallback"]


def test_generated_answers_and_model_refusals_are_logged(fake_assistant: Assistant, logs: Captured) -> None:
    generative(fake_assistant, "Byrådet vil innføre et fritidskort [1].").ask("fritidskort", question_id="g1")
    generative(fake_assistant, f"«{REFUSAL}»").ask("Hva mener byrådet om NATO?", question_id="g2")
    generated, refused = logs.answered()
    assert (generated["backend"], generated["decision"], generated["refused"]) == ("openai", "generated", False)
    assert generated["refusal_reason"] is None and generated["fallback"] is None
    assert set(generated["timings_ms"]) == {"retrieve", "first_token", "model", "total"}
    assert (refused["decision"], refused["refused"]) == ("refused", True)
    assert refused["refusal_reason"]


# --- the formatter -------------------------------------------------------------------------------------


def _record(message: str, args: tuple[Any, ...] = (), **extra: Any) -> logging.LogRecord:
    record = logging.getLogger(LOGGER_NAME).makeRecord(LOGGER_NAME, logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_json_formatter_handles_odd_values() -> None:
    formatter = JsonFormatter()
    odd: dict[str, Any] = {
        "path": Path("/tmp/x"),
        "items": {3, 1},
        "raw": b"\xff\x00",
        "nested": {"a": [1, 2.5, None, True], "b": ("x", "ø")},
        "newline": "linje 1\nlinje 2\r\n\u2028",
        "control": "\x00\x1b[31m",
        "emoji": "🚲",
    }
    entry = strict_json(formatter.format(_record("answered %s of %d", ("fritidskort", 3), **odd)))
    assert entry["event"] == "answered fritidskort of 3"
    assert entry["nested"] == {"a": [1, 2.5, None, True], "b": ["x", "ø"]}
    assert entry["newline"] == odd["newline"] and entry["control"] == odd["control"] and entry["emoji"] == "🚲"
    assert entry["path"] == "/tmp/x"


def test_json_formatter_puts_an_exception_on_one_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("første linje\nandre linje")
    except ValueError:
        record = logging.getLogger(LOGGER_NAME).makeRecord(
            LOGGER_NAME, logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    entry = strict_json(formatter.format(record))
    assert entry["level"] == "error"
    assert isinstance(entry["error"], str) and entry["error"] and "Traceback" not in entry["error"]


EXTRA_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
EXTRA_NAME = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
    lambda n: n not in vars(logging.makeLogRecord({})) and n not in {"message", "asctime", "time", "level", "logger"}
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(message=st.text(), extra=st.dictionaries(EXTRA_NAME, EXTRA_VALUE, max_size=4))
def test_json_formatter_output_is_always_one_valid_json_line(message: str, extra: dict[str, Any]) -> None:
    entry = strict_json(JsonFormatter().format(_record(message, **extra)))
    assert entry["event"] == message
    for name, value in extra.items():
        assert entry[name] == value


# --- the command line: JSON lines on stderr --------------------------------------------------------------


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache_dir: Path, fake_assistant: Assistant
) -> Iterator[Path]:
    """The CLI on the shared fake index; its stderr handler lives only as long as this test."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", FAKE_MODEL)
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(fake_assistant.settings.index_dir))
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(REAL_CORPUS_DIR))
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(session_cache_dir))
    monkeypatch.setenv("ASSISTANT_AUTO_BUILD_INDEX", "false")
    yield tmp_path
    logger.handlers = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.mark.parametrize("log_questions", [None, "false"], ids=["default", "log-questions-off"])
def test_cli_writes_one_json_line_per_question_to_stderr(
    cli: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], log_questions: str | None
) -> None:
    if log_questions is not None:
        monkeypatch.setenv("ASSISTANT_LOG_QUESTIONS", log_questions)
    questions = cli / "q.jsonl"
    questions.write_text(
        "\n".join(json.dumps({"id": f"c{i}", "question": q}) for i, q in enumerate(QUESTIONS.values())) + "\n",
        encoding="utf-8",
    )
    assert main(["ask", "--jsonl", str(questions)]) == 0
    out, err = capsys.readouterr()
    entries = [strict_json(line) for line in err.splitlines()]
    assert [e["question_id"] for e in entries] == [f"c{i}" for i in range(len(QUESTIONS))]
    assert all(set(e) >= ANSWER_FIELDS for e in entries)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [e["refused"] for e in entries] == [r["refused"] for r in rows]
    if log_questions is None:
        assert [e["question"] for e in entries] == list(QUESTIONS.values())
    else:
        assert all("question" not in e for e in entries)
        assert not any(q in err for q in QUESTIONS.values())


def test_configure_logging_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers = []
    try:
        configure_logging("INFO")
        configure_logging("INFO")
        assert len(logger.handlers) == 1 and logger.propagate is False
        # The handler writes to whatever stderr is now (capsys swapped it in), not a stale one.
        capsys.readouterr()
        logger.info("answered", extra={"question_id": "x"})
        assert strict_json(capsys.readouterr().err.strip())["question_id"] == "x"
    finally:
        logger.handlers = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
