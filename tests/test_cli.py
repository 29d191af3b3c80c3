"""The command line: the `ask --jsonl` machine contract and `main()`'s user-facing behaviour."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import MAX_JSONL_LINE_CHARS, main, run_jsonl
from assistant.core import Assistant
from assistant.settings import FAKE_MODEL

RESULT_FIELDS = {
    "id",
    "question",
    "answer",
    "refused",
    "decision",
    "scope",
    "citations",
    "retrieved",
    "related",
    "backend",
    "timings_ms",
    "note",
    "error",
}
CITATION_FIELDS = {"n", "id", "text", "chapter", "section"}


def _run(assistant: Assistant, lines: list[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    handled = run_jsonl(assistant, lines, out)
    text = out.getvalue()
    assert text.endswith("\n") or not text
    rows = [json.loads(line) for line in text.splitlines()]
    assert handled == len(rows)
    return rows


# --- answered lines ------------------------------------------------------------------------

QUESTIONS: list[dict[str, Any]] = [
    {"id": "q1", "question": "Hva vil byrådet gjøre med fastlegeordningen?"},
    {"id": 2, "question": "Hva står det om kulturskolen?"},
    {"question": "fritidskort for ungdomsskoleelever"},
    {"id": "q4", "question": "alle løfter om sykkel"},
]


@pytest.fixture(scope="module")
def answered(fake_assistant: Assistant) -> list[dict[str, Any]]:
    lines = [json.dumps(q, ensure_ascii=False) for q in QUESTIONS]
    return _run(fake_assistant, [lines[0], "", lines[1], "   \n", lines[2], lines[3]])


def test_one_output_line_per_non_blank_input_line_in_order(answered: list[dict[str, Any]]) -> None:
    assert len(answered) == 4
    # The id is echoed; without one, the line number (blank lines included) stands in.
    assert [r["id"] for r in answered] == ["q1", 2, 5, "q4"]
    assert [r["question"] for r in answered] == [q["question"] for q in QUESTIONS]


def test_result_fields_are_exactly_the_contract(answered: list[dict[str, Any]]) -> None:
    for row in answered:
        assert set(row) == RESULT_FIELDS
        assert row["error"] is None
        assert row["refused"] is False
        assert row["decision"] in {"heading", "theme", "ranked", "nearest"}
        assert row["scope"]["kind"] in {"heading", "theme", "unit"}
        assert row["backend"] == "extractive"
        assert isinstance(row["answer"], str) and row["answer"]
        assert set(row["timings_ms"]) == {"retrieve", "answer", "total"}
        assert all(isinstance(v, float | int) and v >= 0 for v in row["timings_ms"].values())
        assert row["timings_ms"]["total"] >= row["timings_ms"]["retrieve"]
        assert isinstance(row["related"], list)
        for citation in row["citations"]:
            assert set(citation) == CITATION_FIELDS


def test_retrieved_is_ranked_with_at_least_ten_hits(answered: list[dict[str, Any]]) -> None:
    for row in answered:
        retrieved = row["retrieved"]
        assert len(retrieved) >= 10
        assert all({"id", "text", "score"} <= set(r) for r in retrieved)
        scores = [r["score"] for r in retrieved]
        assert scores == sorted(scores, reverse=True)


def test_every_marker_has_a_citation_and_every_citation_is_verbatim(
    fake_assistant: Assistant, answered: list[dict[str, Any]]
) -> None:
    corpus = fake_assistant.corpus
    for row in answered:
        citations = row["citations"]
        assert citations, row["question"]
        numbers = [c["n"] for c in citations]
        assert numbers == list(range(1, len(citations) + 1))
        markers = {int(m) for m in re.findall(r"\[(\d+)\]", row["answer"])}
        assert markers == set(numbers)
        for citation in citations:
            unit = corpus.unit(citation["id"])
            if unit.kind == "pledge":
                assert citation["text"] == unit.text
            else:
                assert citation["text"] in unit.text
            assert (citation["chapter"], citation["section"]) == (unit.chapter, unit.section)


def test_known_answers(answered: list[dict[str, Any]]) -> None:
    fastlege, kulturskole, fritidskort, sykkel = answered
    assert [c["id"] for c in fastlege["citations"]] == [
        "helse-og-eldre/fastlegeordningen/p1/s4",
        "helse-og-eldre/fastlegeordningen/1",
        "helse-og-eldre/fastlegeordningen/2",
    ]
    assert fastlege["answer"].startswith("Under overskriften «Fastlegeordningen» har erklæringen tre løfter:")
    assert len(kulturskole["citations"]) == 6
    assert {c["id"].rsplit("/", 2)[1] for c in kulturskole["citations"]} == {"kulturskolen"}
    assert fritidskort["citations"][0]["text"].startswith("innføre et fritidskort for ungdomsskoleelever")
    assert sykkel["scope"] == {"kind": "theme", "name": "sykkel"}
    assert sum(1 for c in sykkel["citations"] if re.search(r"sykkel|sykl", c["text"], flags=re.IGNORECASE)) >= 6


# --- bad lines -----------------------------------------------------------------------------

BAD_LINES = {
    "not-json": ("dette er ikke json", "invalid_json", None),
    "json-array": ('["Hva med sykkel?"]', "not_an_object", None),
    "json-string": ('"Hva med sykkel?"', "not_an_object", None),
    "missing-question": ('{"id": "b1"}', "missing_question", "b1"),
    "question-not-text": ('{"id": "b2", "question": 42}', "missing_question", "b2"),
    "empty-question": ('{"id": "b3", "question": ""}', "invalid_question", "b3"),
    "whitespace-question": ('{"id": "b4", "question": " \\t\\n "}', "invalid_question", "b4"),
    "huge-question": (json.dumps({"id": "b5", "question": "sykkel " * 7143}), "invalid_question", "b5"),
    "control-characters": ('{"id": "b6", "question": "\\u0000\\u0007\\u001b\\ufffd"}', "invalid_question", "b6"),
    "binary-junk": ("\x00\x01\x02\ufffd\ufffd\x7f garbage \x1b[0m", "invalid_json", None),
    "emoji-only": ('{"id": "b8", "question": "🚲🚲🎉"}', "invalid_question", "b8"),
    "over-long-line": ("x" * (MAX_JSONL_LINE_CHARS + 1), "line_too_long", None),
}


@pytest.mark.parametrize(("line", "code", "question_id"), BAD_LINES.values(), ids=list(BAD_LINES))
def test_bad_line_gets_an_error_and_the_run_goes_on(
    fake_assistant: Assistant, line: str, code: str, question_id: str | None
) -> None:
    good = json.dumps({"id": "ok", "question": "fritidskort"})
    rows = _run(fake_assistant, [good, line, good])
    assert len(rows) == 3
    bad = rows[1]
    assert set(bad) == RESULT_FIELDS
    assert bad["error"]["code"] == code
    assert bad["decision"] is None
    assert isinstance(bad["error"]["message"], str) and bad["error"]["message"]
    assert bad["id"] == question_id
    assert bad["answer"] is None
    assert bad["citations"] == bad["retrieved"] == []
    assert [r["error"] for r in (rows[0], rows[2])] == [None, None]
    assert rows[0]["answer"] == rows[2]["answer"]


def test_huge_question_is_rejected_with_a_norwegian_message(fake_assistant: Assistant) -> None:
    (row,) = _run(fake_assistant, [json.dumps({"id": 1, "question": "a" * 50_000})])
    assert row["error"]["code"] == "invalid_question"
    assert "for langt" in row["error"]["message"]
    assert row["question"] == "a" * 50_000


def test_json_null_as_first_line_gets_an_error(fake_assistant: Assistant) -> None:
    (row,) = _run(fake_assistant, ["null"])
    assert row["error"]["code"] == "not_an_object"


def test_json_null_after_a_good_line_gets_an_error(fake_assistant: Assistant) -> None:
    rows = _run(fake_assistant, [json.dumps({"id": "ok", "question": "fritidskort"}), "null"])
    assert len(rows) == 2
    assert rows[1]["error"] is not None, "the null line repeated the previous answer"
    assert rows[1]["error"]["code"] == "not_an_object"


def test_output_is_always_valid_utf8(fake_assistant: Assistant) -> None:
    out = io.StringIO()
    run_jsonl(fake_assistant, ['{"id": 1, "question": "Hva med \\udc80 sykkel?"}'], out)
    out.getvalue().encode("utf-8")


# --- main() --------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache_dir: Path) -> Path:
    """Fake settings through the environment, and a working directory without a `.env`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", FAKE_MODEL)
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("ASSISTANT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(session_cache_dir))
    return tmp_path


def test_main_with_missing_corpus_prints_one_error_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = cli_env / "finnes-ikke"
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(missing))
    assert main(["ask", "Hva med sykkel?"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Feil:")
    assert str(missing) in lines[0]
    assert "Traceback" not in captured.err
    assert not (cli_env / "index").exists()


def test_main_with_invalid_setting_prints_one_error_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSISTANT_RETRIEVE_K", "3")
    assert main(["search", "sykkel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("Feil:")
    assert "retrieve_k" in err[0]


def test_main_search_prints_ranked_hits(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "fritidskort", "-k", "5"]) == 0
    out = capsys.readouterr().out
    ranks = re.findall(r"^\s*(\d+)\. (\d+\.\d+)\s+(pledge|passage)\s+(\S+)$", out, flags=re.MULTILINE)
    assert [int(r[0]) for r in ranks] == [1, 2, 3, 4, 5]
    scores = [float(r[1]) for r in ranks]
    assert scores == sorted(scores, reverse=True)
    assert ranks[0][3].endswith("kulturbyen/13")
    assert "innføre et fritidskort for ungdomsskoleelever" in out
    assert (cli_env / "index" / "CURRENT").exists()


def test_main_ask_prints_answer_with_sources(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "Hva", "vil", "byrådet", "gjøre", "med", "fastlegeordningen?"]) == 0
    out = capsys.readouterr().out
    answer, _, sources = out.partition("\nKilder:\n")
    assert answer.startswith("Under overskriften «Fastlegeordningen» har erklæringen tre løfter:")
    assert "[1]" in answer and "[2]" in answer
    assert "[1] Helse og eldre › Fastlegeordningen  (helse-og-eldre/fastlegeordningen/p1/s4)" in sources
    assert "styrke det medisinskfaglige kompetansemiljøet på helse- og velferdssentrene." in sources
    assert "(extractive; retrieve" in sources


def test_main_ask_jsonl_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = cli_env / "sporsmal.jsonl"
    questions.write_text(
        '{"id": "a", "question": "fritidskort"}\nikke json\n{"id": "c", "question": "Hva står det om kulturskolen?"}\n',
        encoding="utf-8",
    )
    assert main(["ask", "--jsonl", str(questions)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["a", None, "c"]
    assert [r["error"] and r["error"]["code"] for r in rows] == [None, "invalid_json", None]
    assert len(rows[2]["citations"]) == 6


def test_main_ask_jsonl_missing_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--jsonl", str(cli_env / "finnes-ikke.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("Feil:")
    assert "finnes-ikke.jsonl" in err[-1]


def test_main_unknown_backend(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "gpt", "search", "sykkel"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Feil: Unknown backend 'gpt'")
