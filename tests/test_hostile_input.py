"""Hostile input at every entry point: `Assistant.ask`, `cli.run_jsonl` and `cli.main(["ask", ...])`.

Every input gets one defined behaviour: an answer whose citations are valid and verbatim, the fixed
refusal, or an `InvalidQuestionError` (a JSON error object, a one-line «Feil: …» on the command
line) with a Norwegian message. Never a traceback. Property tests (hypothesis) feed random text
through the extractive chain, the parser and the generative chain's citation guard;
`HYPOTHESIS_EXAMPLES` sets their number of examples (default 300).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.cli import main, run_jsonl
from assistant.composing import REFUSAL
from assistant.core import Assistant
from assistant.corpus import load_corpus
from assistant.errors import InvalidQuestionError
from assistant.fakes import ScriptedChatModel
from assistant.logs import LOGGER_NAME
from assistant.parsing import parse_document
from assistant.settings import FAKE_MODEL, load_settings
from assistant.types import Answer, DocumentMeta
from tests.conftest import REAL_CORPUS_DIR

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: Any citation marker group the guard understands: `[2]`, `[1, 3]`, `[1-3]`, `[ 4 ]`.
MARKER_GROUP = re.compile(r"\[\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*\]")
MESSAGE_EMPTY = "Spørsmålet er tomt"
MESSAGE_TOO_LONG = "Spørsmålet er for langt"
MESSAGE_NO_WORDS = "Spørsmålet inneholder ingen ord"
BASE = "Hva vil byrådet gjøre med fastlegeordningen?"
FASTLEGE_IDS = [
    "helse-og-eldre/fastlegeordningen/p1/s4",
    "helse-og-eldre/fastlegeordningen/1",
    "helse-og-eldre/fastlegeordningen/2",
]


def marker_numbers(text: str) -> list[int]:
    """Every number inside every citation marker of `text`."""
    return [int(n) for group in MARKER_GROUP.findall(text) for n in re.findall(r"\d+", group)]


def assert_valid_answer(answer: Answer, units: dict[str, str]) -> None:
    """The invariants of every answer the user can see."""
    numbers = [c.n for c in answer.citations]
    assert numbers == list(range(1, len(numbers) + 1)), "citations are numbered 1..n"
    assert set(marker_numbers(answer.text)) == set(numbers), f"markers and citations disagree: {answer.text!r}"
    for citation in answer.citations:
        assert citation.chunk.unit_id in units, f"cited unit {citation.chunk.unit_id} is not in the corpus"
        assert citation.text == units[citation.chunk.unit_id], "a citation is not the verbatim unit text"
    if answer.refused:
        assert answer.citations == ()
        assert answer.text == REFUSAL
    else:
        assert answer.citations, "an answer that is not a refusal cites the platform"


@pytest.fixture(scope="module")
def units(fake_assistant: Assistant) -> dict[str, str]:
    return {u.id: u.text for u in fake_assistant.corpus.citable}


# --- the hostile inputs and what each must give -----------------------------------------------


@dataclass(frozen=True)
class Expect:
    """`invalid` (message fragment), `same` (same citations as BASE), `cites` (a unit id fragment),
    or `answer-or-refusal` (either, with valid citations)."""

    kind: str
    detail: str = ""


INVALID_EMPTY = Expect("invalid", MESSAGE_EMPTY)
SAME = Expect("same")
EITHER = Expect("answer-or-refusal")
CITES_FASTLEGE = Expect("cites", "/fastlegeordningen/")

HOSTILE: dict[str, tuple[str, Expect]] = {
    "empty": ("", INVALID_EMPTY),
    "whitespace": (" \t\n\r\u00a0\u3000\u2003 ", INVALID_EMPTY),
    "50000-characters": ("sykkel " * 7143, Expect("invalid", MESSAGE_TOO_LONG)),
    "50000-characters-one-word": ("ø" * 50_000, Expect("invalid", MESSAGE_TOO_LONG)),
    "control-characters-only": ("\x00\x01\x02\x07\x08\x0b\x0c\x1b\x7f\x85", INVALID_EMPTY),
    "control-characters-in-words": ("Hva vil byrådet\x00 gjøre med fastlege\u00adordningen\u200b?\x07", SAME),
    "ansi-escapes": ("\x1b[31mHva vil byrådet gjøre med fastlegeordningen?\x1b[0m", EITHER),
    "bidi-override": ("\u202e" + BASE + "\u202c", SAME),
    "line-separators": ("Hva vil byrådet\u2028gjøre med\u2029fastlegeordningen?", SAME),
    "crlf-and-tabs": ("\tHva\tvil byrådet gjøre med fastlegeordningen?\r\n", SAME),
    "invalid-utf8-replace-only": (
        b"\xff\xfe\xfa\xc3\x28".decode("utf-8", "replace"),
        Expect("invalid", MESSAGE_NO_WORDS),
    ),
    "invalid-utf8-surrogateescape-only": (b"\xff\xfe\xfa\x80".decode("utf-8", "surrogateescape"), INVALID_EMPTY),
    "invalid-utf8-replace-in-question": ((BASE.encode() + b" \xff\xfe").decode("utf-8", "replace"), SAME),
    "invalid-utf8-surrogateescape-in-question": (
        (BASE.encode() + b" \xff\xfe").decode("utf-8", "surrogateescape"),
        SAME,
    ),
    "lone-surrogates": ("\udc80\ud800 \udfff", INVALID_EMPTY),  # unpaired, also as JSON escapes
    "emoji-only": ("🚲🚲🎉👍🏽", Expect("invalid", MESSAGE_NO_WORDS)),
    "emoji-zwj-and-flags": ("👨\u200d👩\u200d👧 🇳🇴 ❤️", Expect("invalid", MESSAGE_NO_WORDS)),
    "punctuation-only": ("?!.,;:-–«»", Expect("invalid", MESSAGE_NO_WORDS)),
    "combining-marks-only": ("\u0301\u0301\u0308", Expect("invalid", MESSAGE_NO_WORDS)),
    "html-script-only": ("<script>alert('x')</script>", EITHER),
    "html-script-with-question": ("<script>alert(1)</script> " + BASE, CITES_FASTLEGE),
    "html-tag-around-topic": ("<b>fastlegeordningen</b>", CITES_FASTLEGE),
    "markdown-bold": ("**bold**", EITHER),
    "markdown-link": ("[lenke](http://x)", EITHER),
    "markdown-in-question": ("**Hva** vil byrådet gjøre med [fastlegeordningen](http://x)?", CITES_FASTLEGE),
    "russian": ("Что планирует городской совет для велосипедистов?", EITHER),
    "russian-with-topic": ("Что говорит платформа о fastlegeordningen?", CITES_FASTLEGE),
    "chinese": ("市议会对自行车有什么计划？", EITHER),
    "chinese-with-topic": ("平台对 fastlegeordningen 有什么说法？", CITES_FASTLEGE),
}
#: Payloads that must never be echoed into an answer (answers are built from the corpus only).
PAYLOADS = ("<script", "</b>", "**bold**", "](http", "\x1b")


def check_outcome(
    answer: Answer | None, error: str | None, expect: Expect, units: dict[str, str], base: Answer
) -> None:
    if expect.kind == "invalid":
        assert answer is None, f"expected the message «{expect.detail}», got an answer"
        assert error is not None and error.startswith(expect.detail)
        return
    assert error is None, f"expected an answer, got the message {error!r}"
    assert answer is not None
    assert_valid_answer(answer, units)
    assert not any(payload in answer.text for payload in PAYLOADS)
    ids = [c.chunk.unit_id for c in answer.citations]
    if expect.kind == "same":
        assert not answer.refused
        assert ids == [c.chunk.unit_id for c in base.citations] == FASTLEGE_IDS
        assert answer.text == base.text
    elif expect.kind == "cites":
        assert not answer.refused
        assert any(expect.detail in i for i in ids), ids


@pytest.fixture(scope="module")
def base_answer(fake_assistant: Assistant) -> Answer:
    return fake_assistant.ask(BASE)


@pytest.mark.parametrize(("question", "expect"), HOSTILE.values(), ids=list(HOSTILE))
def test_ask(
    fake_assistant: Assistant, units: dict[str, str], base_answer: Answer, question: str, expect: Expect
) -> None:
    answer: Answer | None = None
    error: str | None = None
    try:
        answer = fake_assistant.ask(question)
    except InvalidQuestionError as exc:
        error = str(exc)
    check_outcome(answer, error, expect, units, base_answer)
    if answer is not None:
        # What is shown and logged as the question is cleaned: no control or surrogate characters.
        answer.question.encode("utf-8")
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u200b\u202e\u00ad]", answer.question)


def _json_lines(text: str) -> list[dict[str, Any]]:
    """JSON Lines are split at "\n" only (U+0085 and U+2028 may stand raw inside a JSON string)."""
    return [json.loads(line) for line in text.split("\n") if line]


def _jsonl(assistant: Assistant, lines: list[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    handled = run_jsonl(assistant, lines, out)
    text = out.getvalue()
    text.encode("utf-8")  # the output is writable as UTF-8
    rows = _json_lines(text)
    assert len(rows) == handled
    return rows


@pytest.mark.parametrize(("question", "expect"), HOSTILE.values(), ids=list(HOSTILE))
def test_run_jsonl(
    fake_assistant: Assistant, units: dict[str, str], base_answer: Answer, question: str, expect: Expect
) -> None:
    line = json.dumps({"id": "h1", "question": question}, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: a UTF-8 file can hold them only escaped
        line = json.dumps({"id": "h1", "question": question})
    (row,) = _jsonl(fake_assistant, [line])
    assert row["id"] == "h1"
    if row["error"] is not None:
        assert row["error"]["code"] == "invalid_question"
        assert row["answer"] is None and row["citations"] == []
    answer = None if row["error"] is not None else fake_assistant.ask(question)
    check_outcome(answer, row["error"] and row["error"]["message"], expect, units, base_answer)
    if answer is not None:
        assert row["answer"] == answer.text
        assert row["refused"] == answer.refused
        assert [(c["n"], c["id"], c["text"]) for c in row["citations"]] == [
            (c.n, c.chunk.unit_id, c.text) for c in answer.citations
        ]


# --- cli.main ------------------------------------------------------------------------------------


@pytest.fixture
def isolated_logger() -> Iterator[logging.Logger]:
    """`main()` installs a stderr handler bound to the stream of the moment; keep it to this test."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers = []
    try:
        yield logger
    finally:
        logger.handlers = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


@pytest.fixture(scope="module")
def cli_index_dir(tmp_path_factory: pytest.TempPathFactory, session_cache_dir: Path) -> Path:
    """A built index the CLI runs load (so no test pays for, or prints, a build)."""
    root = tmp_path_factory.mktemp("hostile-cli")
    settings = load_settings(
        embedding_model=FAKE_MODEL,
        corpus_dir=REAL_CORPUS_DIR,
        index_dir=root / "index",
        models_dir=root / "models",
        cache_dir=session_cache_dir,
        _env_file=None,
    )
    Assistant(settings).build_index()
    return root / "index"


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    session_cache_dir: Path,
    cli_index_dir: Path,
    isolated_logger: logging.Logger,
) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", FAKE_MODEL)
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(cli_index_dir))
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(REAL_CORPUS_DIR))
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(session_cache_dir))
    # An empty question on the command line is read from stdin: give it an empty one.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return tmp_path


@pytest.mark.parametrize(("question", "expect"), HOSTILE.values(), ids=list(HOSTILE))
def test_main_ask(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    fake_assistant: Assistant,
    units: dict[str, str],
    base_answer: Answer,
    question: str,
    expect: Expect,
) -> None:
    code = main(["ask", question])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if expect.kind == "invalid":
        assert code == 2
        assert out == ""
        (line,) = err.strip().splitlines()
        assert line.startswith("Feil: ")
        check_outcome(None, line.removeprefix("Feil: "), expect, units, base_answer)
        return
    assert code == 0
    # stderr holds the JSON log lines only: one per answered question.
    logs = _json_lines(err)
    assert [entry["event"] for entry in logs] == ["answered"]
    answer = fake_assistant.ask(question)  # the same settings and corpus: the same answer
    check_outcome(answer, None, expect, units, base_answer)
    assert out.startswith(answer.text + "\n")
    for citation in answer.citations:
        assert f"[{citation.n}] " in out
        assert f"({citation.chunk.unit_id})\n    {citation.text}\n" in out
    assert logs[0]["citations"] == [c.chunk.unit_id for c in answer.citations]


RAW_LINES: list[tuple[bytes, str | None]] = [
    (b'{"id": "r1", "question": "' + BASE.encode() + b' \xff\xfe"}', None),
    (b"\xff\xfe\x00\x01 binary junk \x80\x81\x1b[0m", "invalid_json"),
    (b'{"id": "r3", "question": "\xf0\x9f\x9a"}', "invalid_question"),  # a cut 4-byte sequence
    (b'{"id": "r4", "question": "\xed\xa0\x80 ' + BASE.encode() + b'"}', None),  # an encoded surrogate
    (b'{"id": "r5", "question": "\xc3\x28"}', "invalid_question"),
    (b'{"id": "r6", "question": "' + "🚲🎉".encode() * 3 + b'"}', "invalid_question"),
    (b"\x00" * 12, "invalid_json"),
    (b'{"id": "r8", "question": "' + BASE.encode() + b'"}\r', None),
    (b'{"id": "r9", "question": "' + b"a" * 50_000 + b'"}', "invalid_question"),
    (b'{"id": "r10", "question": "\\u0000\\u001b\\ud800"}', "invalid_question"),
]


def test_main_ask_jsonl_file_of_raw_bytes(
    cli_env: Path, capsys: pytest.CaptureFixture[str], units: dict[str, str], base_answer: Answer
) -> None:
    path = cli_env / "raw.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in RAW_LINES) + b"\n")
    assert main(["ask", "--jsonl", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    out.encode("utf-8")
    rows = _json_lines(out)
    assert [r["error"] and r["error"]["code"] for r in rows] == [code for _, code in RAW_LINES]
    for row in rows:
        if row["error"] is None:
            assert row["citations"] and [c["id"] for c in row["citations"]] == FASTLEGE_IDS
            assert [c["text"] for c in row["citations"]] == [units[i] for i in FASTLEGE_IDS]
            assert row["answer"] == base_answer.text
        else:
            assert row["error"]["message"].startswith(("Linje", "Spørsmålet"))
    # One JSON log line per answered question on stderr, and nothing else.
    assert [e["event"] for e in _json_lines(err)] == ["answered"] * sum(code is None for _, code in RAW_LINES)


def _stdin(raw: bytes, errors: str) -> io.TextIOWrapper:
    """What Python makes of a piped stdin: strict UTF-8 under a UTF-8 locale (or PYTHONIOENCODING),
    surrogateescape under the C / C.UTF-8 locale."""
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors=errors)


RAW_STDIN = b'{"id": 1, "question": "fritidskort \xff"}\n\xff\xfe junk\n{"id": 3, "question": "fritidskort"}\n'


def test_main_ask_jsonl_stdin_with_invalid_utf8_under_the_c_locale(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", _stdin(RAW_STDIN, "surrogateescape"))
    assert main(["ask", "--jsonl", "-"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["error"] and r["error"]["code"] for r in rows] == [None, "invalid_json", None]
    assert rows[0]["answer"] == rows[2]["answer"]


def test_main_ask_jsonl_stdin_with_invalid_utf8_under_a_utf8_locale(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", _stdin(RAW_STDIN, "strict"))
    assert main(["ask", "--jsonl", "-"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["error"] and r["error"]["code"] for r in rows] == [None, "invalid_json", None]


@pytest.mark.parametrize(
    "line",
    ['{"id": "\\ud800", "question": "fritidskort"}', '{"id": "\\udcff", "question": ""}'],
    ids=["answered", "invalid-question"],
)
def test_jsonl_output_is_utf8_even_for_a_surrogate_id(fake_assistant: Assistant, line: str) -> None:
    out = io.StringIO()
    run_jsonl(fake_assistant, [line], out)
    out.getvalue().encode("utf-8")


def test_jsonl_file_with_a_byte_order_mark(
    cli_env: Path, capsys: pytest.CaptureFixture[str], base_answer: Answer
) -> None:
    path = cli_env / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "b1", "question": BASE}).encode() + b"\n")
    assert main(["ask", "--jsonl", str(path)]) == 0
    (row,) = _json_lines(capsys.readouterr().out)
    assert row["error"] is None
    assert row["answer"] == base_answer.text


# --- property: random text through the extractive chain ------------------------------------------

_CORPUS = load_corpus(REAL_CORPUS_DIR)
VOCABULARY = sorted(
    {w for u in _CORPUS.units for w in u.text.split()}
    | {w for u in _CORPUS.units for w in f"{u.chapter} {u.section} {u.subheading or ''}".split()}
    | set("Hva vil byrådet gjøre med alle løfter om hva står det om kva seier what does the council".split())
)
#: Every Unicode category, surrogates and unassigned code points included.
ANY_CHAR = st.characters(exclude_categories=())
ODD_CHAR = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me", "So", "Sk"])
WORD = st.one_of(st.sampled_from(VOCABULARY), st.text(ANY_CHAR, min_size=1, max_size=6))
QUESTIONS = st.one_of(
    st.text(ANY_CHAR, max_size=200),
    st.text(ODD_CHAR, max_size=40),
    st.lists(WORD, max_size=25).map(" ".join),
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=6).map(" ".join),
    # Around the length limit.
    st.tuples(st.sampled_from(VOCABULARY), st.integers(1, 700)).map(lambda p: " ".join([p[0]] * p[1])),
)


@PROPERTY
@given(question=QUESTIONS)
def test_random_text_never_breaks_the_extractive_chain(
    fake_assistant: Assistant, units: dict[str, str], question: str
) -> None:
    try:
        answer = fake_assistant.ask(question)
    except InvalidQuestionError as exc:
        assert str(exc).startswith((MESSAGE_EMPTY, MESSAGE_TOO_LONG, MESSAGE_NO_WORDS))
        return
    assert_valid_answer(answer, units)


# --- property: the parser --------------------------------------------------------------------------

META = DocumentMeta(doc_id="d", title="T", period="", parties=(), kind="", source_file="d.txt")
DOC_WORD = st.one_of(
    st.sampled_from(
        "Byrådet vil: og eller med for at sykkel Fastlege **Kultur** skole. barnehage, 2000 kroner».".split()
    ),
    st.text(ANY_CHAR, min_size=1, max_size=8),
)
LINE_TEXT = st.lists(DOC_WORD, min_size=1, max_size=8).map(" ".join)
DOC_LINE = st.one_of(
    LINE_TEXT.map(lambda t: "- " + t),
    LINE_TEXT.map(lambda t: "  - " + t),
    LINE_TEXT.map(lambda t: "• " + t),
    st.tuples(st.integers(1, 4), LINE_TEXT).map(lambda p: "#" * p[0] + " " + p[1]),
    st.sampled_from(["", "", "Byrådet vil:", "## Byrådet vil:", "---"]),
    LINE_TEXT,
    LINE_TEXT.map(lambda t: f"**{t}**"),
    st.text(ANY_CHAR, max_size=20),
)


@PROPERTY
@given(document=st.lists(DOC_LINE, max_size=40).map("\n".join))
def test_random_documents_parse_into_units_made_of_their_words(document: str) -> None:
    parsed = parse_document(document, META)
    ids = [u.id for u in parsed.units]
    assert len(ids) == len(set(ids)), "unit ids are unique"
    for unit in parsed.units:
        assert unit.kind in ("pledge", "passage")
        assert unit.text.strip()
        for word in unit.text.split():
            assert word in document, f"{word!r} of unit {unit.id} is not in the input"


# --- property: random model replies through the generative chain ----------------------------------


@pytest.fixture(scope="module")
def scripted(fake_assistant: Assistant) -> tuple[Assistant, ScriptedChatModel]:
    """A generative assistant on the shared index; each example appends the model's next reply."""
    model = ScriptedChatModel()
    return fake_assistant.derive(backend="openai", chat_model=model), model


MARKER = st.one_of(
    st.integers(0, 12).map(lambda n: f"[{n}]"),
    st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda ns: "[" + ", ".join(map(str, ns)) + "]"),
    st.tuples(st.integers(0, 10), st.integers(0, 40)).map(lambda p: f"[{p[0]}-{p[1]}]"),
    st.integers(13, 10**15).map(lambda n: f"[{n}]"),
)
# Brackets stay out of the random text: a stray "[" or "]" next to a removed marker is the splice
# bug pinned by test_injection.py::test_a_removed_marker_cannot_splice_a_new_one.
REPLY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=(), exclude_characters="[]"), max_size=40),
    st.sampled_from(VOCABULARY),
    st.sampled_from([". ", "! ", "? ", "\n", " ", "Byrådet vil ", REFUSAL, "«", "»"]),
)
REPLIES = st.lists(st.one_of(REPLY_TEXT, MARKER), max_size=30).map("".join)
GENERATIVE_QUESTIONS = [BASE, "fritidskort", "alle løfter om sykkel", "Hva mener byrådet om NATO?"]


@PROPERTY
@given(reply=REPLIES, question=st.sampled_from(GENERATIVE_QUESTIONS))
def test_random_model_replies_never_cite_outside_the_sources(
    scripted: tuple[Assistant, ScriptedChatModel], units: dict[str, str], reply: str, question: str
) -> None:
    assistant, model = scripted
    model.replies.append(reply)
    answer = assistant.ask(question)
    assert model.replies == []
    assert_valid_answer(answer, units)
    assert answer.backend in ("openai", "extractive")
    if answer.backend == "extractive":
        assert answer.note is not None  # a fallback always says why
