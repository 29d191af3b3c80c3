"""Pure helpers of the web app: escaping, markers, streaming, context, exports, error messages."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant import ui_support as ui
from assistant.composing import REFUSAL, WELCOME
from assistant.core import Assistant
from assistant.errors import (
    AssistantError,
    ConfigError,
    CorpusError,
    IndexCorruptError,
    IndexMissingError,
    IndexStaleError,
    InvalidQuestionError,
    ModelUnavailableError,
)
from assistant.relevance import TermIndex
from assistant.types import Answer, AnswerScope, Chunk, Citation, Hit, Unit
from tests.conftest import FakeSettings

FASTLEGE_1 = "helse-og-eldre/fastlegeordningen/1"


def _unescape(markdown: str) -> str:
    """What a reader sees of escaped text (backslash escapes and entities resolved)."""
    text = markdown.replace(ui.WORD_JOINER, "")
    text = re.sub(r"\\(.)", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _chunk(unit_id: str, *, kind: str = "pledge", text: str = "gjøre noe.", subheading: str | None = None) -> Chunk:
    return Chunk(
        id=unit_id,
        unit_id=unit_id,
        kind=kind,  # type: ignore[arg-type]
        text=text,
        retrieval_text=text,
        chapter="Helse og eldre",
        section="Fastlegeordningen",
        subheading=subheading,
        doc_id="leangen-erklaeringen",
        number=1,
        n_tokens=3,
    )


def _unit(unit_id: str, chapter: str, section: str, text: str = "gjøre noe.", subheading: str | None = None) -> Unit:
    return Unit(
        id=unit_id,
        kind="pledge",
        text=text,
        doc_id="leangen-erklaeringen",
        chapter=chapter,
        section=section,
        subheading=subheading,
        number=1,
    )


def _answer(text: str, citations: Sequence[Chunk] = (), *, refused: bool = False) -> Answer:
    return Answer(
        question="q",
        text=text,
        refused=refused,
        citations=tuple(Citation(n, c, c.text) for n, c in enumerate(citations, start=1)),
        retrieved=(),
        backend="extractive",
        timings_ms={"retrieve": 21.4, "answer": 0.61, "total": 22.0},
    )


TITLES = {"leangen-erklaeringen": "Leangen-erklæringen"}

# --- escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped_form"),
    [
        ("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
        ("**x**", "\\*\\*x\\*\\*"),
        ("_x_", "\\_x\\_"),
        ("[lenke](http://a)", "\\[lenke\\]\\(http\\://a\\)"),
        ("`kode`", "\\`kode\\`"),
        ("$x^2$", "\\$x\\^2\\$"),
        (":red[rød]", "\\:\u2060red\\[rød\\]"),
        (":material/home:", "\\:\u2060material/home\\:"),
        ("# Overskrift", "\\# Overskrift"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert\\(1\\)&lt;/script&gt;"),
    ],
)
def test_escape_markdown_neutralises_markup(raw: str, escaped_form: str) -> None:
    escaped = ui.escape_markdown(raw)
    assert escaped == escaped_form
    assert "<" not in escaped
    assert _unescape(escaped) == raw


def test_escape_markdown_keeps_plain_norwegian_text() -> None:
    text = "Byrådet vil satse på æøå og «sitater» – 2000 kroner"
    assert ui.escape_markdown(text) == text


def test_escape_markdown_keeps_line_breaks_as_hard_breaks() -> None:
    assert ui.escape_markdown("a\nb") == "a  \nb"


#: Characters `str.splitlines` breaks at: escaping turns them into Markdown hard breaks. (The
#: invisible word joiner is what escaping adds after a colon, so it is left out of the round trip.)
LINE_BREAKS = "\r\n\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters=LINE_BREAKS + ui.WORD_JOINER)))
def test_escape_markdown_is_lossless_and_leaves_no_raw_html(text: str) -> None:
    escaped = ui.escape_markdown(text)
    assert _unescape(escaped) == text
    assert "<" not in escaped and ">" not in escaped
    # Every special character is preceded by a backslash.
    assert not re.search(r"(?<!\\)(?:\\\\)*[*_`\[\]]", escaped.replace("\\\\", ""))


# --- answers -------------------------------------------------------------------------------------


def test_markers_become_numbered_badges() -> None:
    assert ui.marker_badge(3) == ":blue-badge[3]"
    markdown = ui.answer_markdown("Byrådet vil gjøre *dette* [1]. Byrådet vil også gjøre det [12].")
    assert ":blue-badge[1]" in markdown and ":blue-badge[12]" in markdown
    assert "[1]" not in markdown.replace(":blue-badge[1]", "")
    assert "\\*dette\\*" in markdown


def test_grouped_answers_keep_their_bold_chapters_and_bullets() -> None:
    text = (
        "Leangen-erklæringen har 5 punkter om dette. Byrådet vil:\n\n**Helse og eldre**\n- gjøre A [1].\n- gjøre B [2]."
    )
    lines = ui.answer_markdown(text).split("\n")
    assert lines[2] == "**Helse og eldre**"
    assert lines[3].startswith("- gjøre A :blue-badge[1]")
    assert lines[4].startswith("- gjøre B :blue-badge[2]")


def test_refusal_text_is_escaped_but_readable() -> None:
    assert _unescape(ui.escape_markdown(REFUSAL)) == REFUSAL


def test_stream_pieces_join_back_and_keep_markup_whole() -> None:
    markdown = ui.answer_markdown(
        "Leangen-erklæringen har 2 punkter:\n\n**Kultur, idrett og friluftsliv**\n- A [1].\n- B [2]."
    )
    pieces = ui.stream_pieces(markdown)
    assert "".join(pieces) == markdown
    assert len(pieces) > 5
    assert any(p.startswith("**Kultur, idrett og friluftsliv**") for p in pieces)
    assert any(p.startswith(":blue-badge[1]") for p in pieces)


@given(st.text())
def test_stream_pieces_always_join_back(text: str) -> None:
    assert "".join(ui.stream_pieces(text)) == text


def test_stream_delay_is_brisk_and_bounded() -> None:
    assert ui.stream_delay(0) == 0.0
    assert ui.stream_delay(10) == pytest.approx(0.01)
    assert ui.stream_delay(10_000) * 10_000 <= 0.4 + 1e-9


def test_typewriter_yields_every_piece_in_order() -> None:
    assert list(ui.typewriter(["a ", "b ", "c"], 0.0)) == ["a ", "b ", "c"]


@pytest.mark.parametrize(("ms", "shown"), [(0.61, "0,6 ms"), (9.94, "9,9 ms"), (21.4, "21 ms"), (1234.5, "1234 ms")])
def test_format_ms_is_norwegian(ms: float, shown: str) -> None:
    assert ui.format_ms(ms) == shown


def test_transparency_caption_names_document_version_backend_and_timings() -> None:
    caption = _unescape(ui.transparency_caption(_answer("x"), "Leangen-erklæringen", "260b506392896b53"))
    assert caption == "Leangen-erklæringen · versjon 260b5063 · metode: extractive · søk 21 ms · svar 0,6 ms"


# --- citations -----------------------------------------------------------------------------------


def test_citation_string_and_heading_path() -> None:
    chunk = _chunk(FASTLEGE_1)
    assert ui.heading_path(chunk) == "Helse og eldre › Fastlegeordningen"
    assert ui.citation_string("Leangen-erklæringen", chunk) == "Leangen-erklæringen, Helse og eldre › Fastlegeordningen"
    with_sub = _chunk("x/y/z/1", subheading="Legevakt")
    assert ui.heading_path(with_sub) == "Helse og eldre › Fastlegeordningen › Legevakt"


def test_source_label_has_the_marker_nearest_heading_and_opening_words() -> None:
    chunk = _chunk(FASTLEGE_1, text="vurdere forsøk med tverrfaglige fastlegekontor " * 5)
    label = ui.source_label(1, chunk)
    # A short path: one line on a phone until the source is opened (where the whole path is).
    assert label.startswith(":blue-badge[1] **Fastlegeordningen** — vurdere forsøk")
    assert label.endswith("…") and len(_unescape(label)) < 110
    assert not ui.source_label(None, chunk).startswith(":blue-badge")
    assert ui.short_place(_chunk("x/y/z/1", subheading="Legevakt")) == "Legevakt"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("kort tekst", 90, "kort tekst"), ("en to tre fire fem", 12, "en to tre …"), ("a,  b\n c", 90, "a, b c")],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert ui.shorten(text, limit) == expected


def test_citation_ids_of_an_answer() -> None:
    answer = _answer("x", [_chunk("a/1"), _chunk("a/2")])
    assert ui.citation_ids(answer) == ["a/1", "a/2"]


# --- context -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def context(fake_assistant: Assistant) -> ui.ContextIndex:
    return ui.ContextIndex(fake_assistant.corpus.documents)


def test_context_window_shows_the_neighbours_in_the_same_section(context: ui.ContextIndex) -> None:
    window = context.window(FASTLEGE_1)
    assert window is not None
    assert window.unit.id == FASTLEGE_1
    assert {u.section for u in window.units} == {"Fastlegeordningen"}
    assert len(window.units) > 1
    assert window.units[window.target].id == FASTLEGE_1
    assert window.hidden_before + window.hidden_after + len(window.units) == 4  # 2 passages + 2 pledges


def test_context_window_is_cut_to_the_radius_and_counts_the_rest(fake_assistant: Assistant) -> None:
    context = ui.ContextIndex(fake_assistant.corpus.documents)
    section = next(s for c in fake_assistant.corpus.documents[0].chapters for s in c.sections if len(s.units) > 20)
    group = [u for u in section.units if u.subheading == section.units[10].subheading]
    middle = group[len(group) // 2]
    window = context.window(middle.id, radius=2)
    assert window is not None
    assert len(window.units) == 5 and window.target == 2
    assert {u.subheading for u in window.units} == {middle.subheading}
    assert window.hidden_before + window.hidden_after == len(group) - 5
    assert context.window(group[0].id, radius=2).target == 0  # type: ignore[union-attr]
    assert context.window("no/such/id") is None
    assert middle.id in context and "no/such/id" not in context


def test_context_index_finds_the_whole_unit(context: ui.ContextIndex) -> None:
    unit = context.unit(FASTLEGE_1)
    assert unit is not None and unit.id == FASTLEGE_1 and unit.kind == "pledge"
    assert context.unit("no/such/id") is None


def test_source_label_prefers_the_whole_verbatim_unit() -> None:
    chunk = _chunk("x/p1", kind="passage", text="første bit")
    assert "hele avsnittet" in ui.source_label(2, chunk, "hele avsnittet")
    assert "første bit" in ui.source_label(2, chunk)


def test_context_markdown_marks_only_the_cited_pledge(context: ui.ContextIndex) -> None:
    window = context.window(FASTLEGE_1)
    assert window is not None
    markdown = ui.context_markdown(window)
    highlighted = [line for line in markdown.splitlines() if "orange-background" in line]
    assert len(highlighted) == 1
    assert "sitert" in highlighted[0]
    assert "tverrfaglige fastlegekontor" in _unescape(highlighted[0])
    # The section's prose first, then its pledges under «Byrådet vil:».
    assert markdown.startswith("*Helse og eldre › Fastlegeordningen*\n")
    prose, pledges = markdown.split("\nByrådet vil:\n")
    assert "mangel på fastleger" in _unescape(prose)
    assert "tverrfaglige fastlegekontor" in _unescape(pledges)
    assert "punkt" not in markdown  # the whole (short) section is shown


FASTLEGE_STATEMENT = "helse-og-eldre/fastlegeordningen/p1/s4"


def test_a_cited_statement_is_shown_as_its_sentence_highlighted_within_its_passage(
    context: ui.ContextIndex,
) -> None:
    statement = context.unit(FASTLEGE_STATEMENT)
    assert statement is not None and statement.kind == "statement" and FASTLEGE_STATEMENT in context
    window = context.window(FASTLEGE_STATEMENT)
    assert window is not None
    # The passage the sentence belongs to is the unit shown, among its neighbours.
    assert window.unit.id == statement.parent == "helse-og-eldre/fastlegeordningen/p1"
    assert window.sentence == statement.text
    markdown = ui.context_markdown(window)
    [cited] = [line for line in markdown.splitlines() if "sitert" in line]
    # Only the sentence is highlighted; the rest of the passage stands around it, unmarked.
    [marked] = re.findall(r":orange-background\[\*\*(.+?)\*\*\]", cited)
    assert _unescape(marked) == statement.text
    before = _unescape(cited.split(":orange-background[", 1)[0])
    assert "mangel på fastleger" in before and before.startswith("- «")
    assert markdown.count("orange-background") == 1


def test_a_statement_without_its_sentence_in_the_passage_highlights_the_passage() -> None:
    passage = Unit("d/p1", "passage", "Første setning. Andre setning.", "d", "Kap", "Sek", None, 1)
    window = ui.ContextWindow((passage,), 0, 0, 0, sentence="En setning som ikke står der.")
    [line] = [x for x in ui.context_markdown(window).splitlines() if "sitert" in x]
    assert line.startswith("- :orange-background[**«") and "Første setning" in _unescape(line)


def test_context_markdown_says_how_much_of_the_section_is_left_out(fake_assistant: Assistant) -> None:
    context = ui.ContextIndex(fake_assistant.corpus.documents)
    section = next(s for c in fake_assistant.corpus.documents[0].chapters for s in c.sections if len(s.units) > 20)
    group = [u for u in section.units if u.subheading == section.units[10].subheading]
    window = context.window(group[1].id, radius=0)
    assert window is not None
    lines = ui.context_markdown(window).splitlines()
    assert lines[2] == "- *… 1 punkt før*"
    assert lines[-1] == f"- *… {len(group) - 2} punkter etter*"


# --- conversation ----------------------------------------------------------------------------------


class RecordingAssistant:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def ask(self, question: str, history: ui.History = ()) -> Answer:
        self.calls.append((question, list(history)))
        return _answer(f"svar på {question}")

    def stream(self, question: str, history: ui.History = ()) -> Iterator[str | Answer]:
        self.calls.append((question, list(history)))
        yield "Byrådet "
        yield ""
        yield "vil [1]."
        yield _answer("Byrådet vil [1].")


def test_history_pairs_keep_answered_turns_in_order() -> None:
    turns = [
        ui.Turn("første", answer=_answer("svar 1")),
        ui.Turn("", message="Spørsmålet er tomt.", invalid=True),
        ui.Turn("andre", answer=_answer("svar 2")),
    ]
    assert ui.history_pairs(turns) == [("første", "svar 1"), ("andre", "svar 2")]


def test_history_pairs_hold_what_a_follow_up_was_read_as_and_leave_out_small_talk() -> None:
    follow_up = replace(
        _answer("svar 2"), question="og hva med kollektiv?", standalone_question="Alle løfter om kollektiv"
    )
    turns = [
        ui.Turn("Alle løfter om sykkel", answer=_answer("svar 1")),
        ui.Turn("og hva med kollektiv?", answer=follow_up),
        ui.Turn("takk", answer=replace(_answer("Hei! …"), decision="chat")),
    ]
    assert ui.history_pairs(turns) == [("Alle løfter om sykkel", "svar 1"), ("Alle løfter om kollektiv", "svar 2")]


def test_ask_with_history_passes_the_conversation_on() -> None:
    assistant = RecordingAssistant()
    answer = ui.ask_with_history(assistant, "og for eldre?", [("Hva med fastleger?", "Byrådet vil …")])
    assert assistant.calls == [("og for eldre?", [("Hva med fastleger?", "Byrådet vil …")])]
    assert answer.text == "svar på og for eldre?"


def test_stream_with_history_yields_text_and_keeps_the_checked_answer() -> None:
    assistant = RecordingAssistant()
    result = ui.StreamResult()
    pieces = ui.stream_with_history(assistant, "fritidskort", [("a", "b")], result)
    assert result.answer is None  # lazily: nothing asked before the stream is consumed
    assert list(pieces) == ["Byrådet ", "vil [1]."]
    assert result.answer is not None and result.answer.text == "Byrådet vil [1]."
    assert assistant.calls == [("fritidskort", [("a", "b")])]


def test_interpreted_as_shows_only_a_real_rewrite() -> None:
    answer = _answer("x")
    assert ui.interpreted_as(answer) is None
    assert ui.interpreted_as(replace(answer, question="og for eldre?", standalone_question="og for eldre? ")) is None
    rewritten = replace(answer, question="og for eldre?", standalone_question="Hva med fastleger for eldre?")
    assert ui.interpreted_as(rewritten) == "Hva med fastleger for eldre?"


def test_transparency_caption_of_a_generated_answer_shows_the_model_time() -> None:
    answer = replace(_answer("x"), backend="openai", timings_ms={"retrieve": 30.0, "model": 850.0})
    caption = _unescape(ui.transparency_caption(answer, "Leangen-erklæringen", "260b5063"))
    assert caption.endswith("metode: openai · søk 30 ms · modell 850 ms")
    fallback = replace(answer, backend="extractive", timings_ms={"retrieve": 30.0, "answer": 1.0, "model": 12.0})
    assert _unescape(ui.transparency_caption(fallback, "L", "x")).endswith("modell 12 ms · svar 1,0 ms")


def test_turns_get_distinct_ids() -> None:
    assert ui.Turn("a").id != ui.Turn("a").id


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CorpusError("x"), "korpuset"),
        (IndexMissingError("x"), "mangler"),
        (IndexStaleError("x"), "utdatert"),
        (IndexCorruptError("x"), "skadet"),
        (ModelUnavailableError("x"), "Språkmodellen"),
        (ConfigError("Unknown backend 'x'."), "Innstillingene"),
        (AssistantError("x"), "Noe gikk galt"),
        (RuntimeError("boom"), "Noe gikk galt"),
    ],
)
def test_errors_become_one_norwegian_sentence(error: BaseException, expected: str) -> None:
    message = ui.user_message(error)
    assert expected in message
    assert "Traceback" not in message and message != "x"
    assert message.count(". ") == 0  # one sentence


def test_invalid_question_messages_pass_through() -> None:
    message = "Spørsmålet er tomt. Skriv et spørsmål om Leangen-erklæringen."
    assert ui.user_message(InvalidQuestionError(message)) == message


# --- the pledge browser ------------------------------------------------------------------------------

PLEDGES = (
    _unit("a/s1/1", "A", "S1", "sykkelveier langs Byåsveien."),
    _unit("a/s1/2", "A", "S1", "flere benker."),
    _unit("a/s2/1", "A", "S2", "trygg skolevei.", subheading="Skole"),
    _unit("b/s3/1", "B", "S3", "billigere buss."),
)


def test_chapters_and_sections_keep_document_order() -> None:
    assert ui.chapters_and_sections(PLEDGES) == {"A": ["S1", "S2"], "B": ["S3"]}


@pytest.mark.parametrize(
    ("chapter", "section", "expected"),
    [
        (None, None, ["a/s1/1", "a/s1/2", "a/s2/1", "b/s3/1"]),
        (ui.ALL, ui.ALL, ["a/s1/1", "a/s1/2", "a/s2/1", "b/s3/1"]),
        ("A", ui.ALL, ["a/s1/1", "a/s1/2", "a/s2/1"]),
        ("A", "S2", ["a/s2/1"]),
        (ui.ALL, "S3", ["b/s3/1"]),
        ("B", "S1", []),
    ],
)
def test_filter_by_chapter_and_section(chapter: str | None, section: str | None, expected: list[str]) -> None:
    assert [u.id for u in ui.filter_pledges(PLEDGES, chapter, section)] == expected


def test_filter_keeps_the_search_order_and_drops_unknown_ids() -> None:
    ranked = ["b/s3/1", "passage/p1", "a/s1/2", "a/s1/1"]
    assert [u.id for u in ui.filter_pledges(PLEDGES, None, None, ranked)] == ["b/s3/1", "a/s1/2", "a/s1/1"]
    assert [u.id for u in ui.filter_pledges(PLEDGES, "A", None, ranked)] == ["a/s1/2", "a/s1/1"]
    assert ui.filter_pledges(PLEDGES, None, None, []) == []


def _hit(unit_id: str, score: float, bm25: float, kind: str = "pledge") -> Hit:
    return Hit(chunk=_chunk(unit_id, kind=kind), score=score, dense_score=score, bm25_score=bm25)


def test_search_ranking_without_a_term_index_keeps_pledges_with_a_bm25_score() -> None:
    hits = [_hit("p/1", 0.9, 0.0), _hit("x/p1", 0.8, 3.0, kind="passage"), _hit("p/2", 0.7, 2.0), _hit("p/3", 0.6, 1.0)]
    assert ui.search_ranking(hits) == (["p/2", "p/3"], "words")


def test_search_ranking_falls_back_to_the_nearest_pledges() -> None:
    hits = [_hit(f"p/{i}", 1.0 - i / 100, 0.0) for i in range(30)] + [_hit("x/p1", 0.5, 0.0, kind="passage")]
    ids, match = ui.search_ranking(hits)
    assert match == "meaning"
    assert ids == [f"p/{i}" for i in range(ui.SEARCH_FALLBACK)]


@pytest.fixture(scope="module")
def terms(fake_assistant: Assistant) -> tuple[TermIndex, dict[str, int]]:
    index = fake_assistant.index
    return TermIndex(list(index.chunks), index.decompounder), {c.id: i for i, c in enumerate(index.chunks)}


def _search(fake_assistant: Assistant, terms: tuple[TermIndex, dict[str, int]], query: str) -> tuple[list[str], str]:
    hits = fake_assistant.search(query, len(fake_assistant.index.chunks))
    return ui.search_ranking(hits, terms[0], terms[1], query)


def test_search_ranking_over_the_real_index(fake_assistant: Assistant, terms: tuple[TermIndex, dict[str, int]]) -> None:
    ids, match = _search(fake_assistant, terms, "fastlege")
    assert match == "words"
    assert set(ids) >= {FASTLEGE_1}
    assert all(i in {u.id for u in fake_assistant.corpus.pledges} for i in ids)


def test_search_shows_only_pledges_whose_own_words_match(
    fake_assistant: Assistant, terms: tuple[TermIndex, dict[str, int]]
) -> None:
    texts = {u.id: u.text.lower() for u in fake_assistant.corpus.pledges}
    ids, match = _search(fake_assistant, terms, "sykkel")
    assert match == "words"
    # «sykkel» finds «sykkelparkeringsplasser» and «syklende», not a pledge whose search words
    # alone mention cycling.
    assert ids and all(re.search(r"sykk|sykl", texts[i]) for i in ids)
    all_hits = fake_assistant.search("sykkel", len(fake_assistant.index.chunks))
    with_score = {h.chunk.unit_id for h in all_hits if h.chunk.kind == "pledge" and (h.bm25_score or 0) > 0}
    assert len(with_score) > len(ids)  # the floor left some out


def test_search_with_words_no_pledge_has_together(
    fake_assistant: Assistant, terms: tuple[TermIndex, dict[str, int]]
) -> None:
    ids, match = _search(fake_assistant, terms, "sykkel barnehage")
    assert match in ("related", "some_words")
    assert ids
    _, nothing = _search(fake_assistant, terms, "qwxzy")
    assert nothing == "meaning"


def test_pages() -> None:
    assert ui.page_count(0, 20) == 1
    assert ui.page_count(20, 20) == 1
    assert ui.page_count(21, 20) == 2
    assert [u.id for u in ui.page_slice(PLEDGES, 2, 3)] == ["b/s3/1"]
    assert [u.id for u in ui.page_slice(PLEDGES, 99, 3)] == ["b/s3/1"]
    assert [u.id for u in ui.page_slice(PLEDGES, 0, 3)] == ["a/s1/1", "a/s1/2", "a/s2/1"]


def test_csv_export_of_a_selection() -> None:
    data = ui.pledges_csv(PLEDGES[:3], TITLES)
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read æøå right
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(rows[0]) == ui.CSV_FIELDS
    assert rows[1] == ["a/s1/1", "A", "S1", "", "sykkelveier langs Byåsveien.", "Leangen-erklæringen, A › S1"]
    assert rows[3][3] == "Skole" and rows[3][5] == "Leangen-erklæringen, A › S2 › Skole"
    assert len(rows) == 4


def test_markdown_export_groups_by_heading() -> None:
    markdown = ui.pledges_markdown(PLEDGES, TITLES, "Utvalg: kapittel «A».")
    assert markdown.startswith("# Leangen-erklæringen: 4 løfter\n\nUtvalg: kapittel «A».\n")
    assert markdown.count("## A › S1") == 1
    assert "## A › S2 › Skole" in markdown and "## B › S3" in markdown
    assert "- sykkelveier langs Byåsveien. (`a/s1/1`)" in markdown
    assert markdown.count("Byrådet vil:") == 3
    assert ui.pledges_markdown([], TITLES).startswith("# Leangen-erklæringen: 0 løfter")


def test_selection_description() -> None:
    assert ui.selection_description(ui.ALL, ui.ALL, " ") == "Alle løfter."
    assert ui.selection_description("A", "S1", "sykkel") == "Utvalg: kapittel «A», overskrift «S1», søk «sykkel»."
    assert ui.selection_description(ui.ALL, ui.ALL, "", "Eldre") == "Utvalg: tema «Eldre»."


def test_export_filenames() -> None:
    assert ui.export_filename("csv") == "leangen-erklaeringen-lofter.csv"


# --- loading ---------------------------------------------------------------------------------------


def test_load_resources_warms_up_and_counts_loads(
    fake_settings: FakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ui.assistant_loads()
    resources = ui.load_resources(fake_settings())
    assert ui.assistant_loads() == before + 1
    assert resources.title == "Leangen-erklæringen"
    assert resources.titles == TITLES
    assert len(resources.corpus_version) == 8
    assert resources.corpus_version == resources.assistant.corpus.sha256[:8]
    assert len(resources.pledges) == 285
    assert resources.n_chunks == len(resources.assistant.index.chunks)
    assert FASTLEGE_1 in resources.context
    assert f"load #{before + 1}" in capsys.readouterr().err


def test_load_library_is_the_corpus_without_the_model(fake_settings: FakeSettings) -> None:
    before = ui.assistant_loads()
    library = ui.load_library(fake_settings())
    assert ui.assistant_loads() == before  # nothing heavy: the page can show at once
    assert library.title == "Leangen-erklæringen" and library.period == "2024–2027"
    assert len(library.pledges) == 285 and FASTLEGE_1 in library.context
    assert library.themes and all(t.pledges for t in library.themes)
    resources = ui.load_resources(fake_settings(), library)
    assert resources.library is library and resources.assistant is library.assistant
    assert resources.n_chunks == len(resources.terms.chunk_terms) == len(resources.positions)


def test_load_library_checks_the_settings_at_once(fake_settings: FakeSettings) -> None:
    with pytest.raises(ConfigError):
        ui.load_library(fake_settings(backend="orakel"))


# --- loading behind the page ---------------------------------------------------------------------


def _resources(fake_settings: FakeSettings) -> ui.Resources:
    return ui.load_resources(fake_settings())


def test_the_loader_loads_once_in_the_background_and_hands_out_the_result(fake_settings: FakeSettings) -> None:
    release = threading.Event()
    calls: list[int] = []
    loaded = _resources(fake_settings)

    def load() -> ui.Resources:
        calls.append(1)
        release.wait(30)
        return loaded

    loader = ui.Loader(load)
    assert not loader.ready
    loader.start().start()  # starting twice loads once
    assert not loader.ready and loader.error is None
    with pytest.raises(TimeoutError):
        loader.result(timeout=0.01)
    release.set()
    assert loader.result(timeout=30) is loaded
    assert loader.ready and calls == [1]
    ui.wait_for_loaders()


def test_the_loader_keeps_a_failure_for_every_caller() -> None:
    def load() -> ui.Resources:
        raise IndexMissingError("no index")

    loader = ui.Loader(load)
    with pytest.raises(IndexMissingError):
        loader.result(timeout=30)  # result() starts the load when nobody has
    assert isinstance(loader.error, IndexMissingError)
    with pytest.raises(IndexMissingError):
        loader.result()


# --- the welcome, English, «Om svaret» -------------------------------------------------------------


def test_the_welcome_is_the_answer_stages_welcome_with_its_examples_as_buttons() -> None:
    intro, examples = ui.welcome_parts()
    assert WELCOME.startswith(intro) and "Prøv for eksempel" not in intro
    assert examples and all(f"«{e}»" in WELCOME for e in examples)
    assert ui.EXAMPLE_QUESTIONS[: len(examples)] == examples
    assert _unescape(ui.welcome_markdown()) == intro
    assert ui.welcome_parts("Hei! «Ikke et eksempel».") == ("Hei! «Ikke et eksempel».", ())


def test_an_english_question_gets_an_english_lead() -> None:
    english = replace(_answer("Byrådet vil …"), question="What will the council do about the GP scheme?")
    assert ui.english_lead(english) == ui.ENGLISH_LEAD
    assert "Norwegian" in ui.ENGLISH_LEAD and "own words" in ui.ENGLISH_LEAD
    assert ui.english_lead(replace(english, refused=True)) == ui.ENGLISH_LEAD_REFUSED
    assert ui.english_lead(replace(english, decision="chat")) is None
    assert ui.english_lead(replace(english, question="Hva vil byrådet gjøre med fastlegeordningen?")) is None


def test_the_document_line_and_about_the_answer() -> None:
    assert _unescape(ui.document_line("Leangen-erklæringen", "2024–2027")) == ("Kilde: Leangen-erklæringen (2024–2027)")
    answer = replace(_answer("x"), decision="theme", scope=AnswerScope("theme", "eldre"))
    lines = [_unescape(line) for line in ui.about_answer(answer, "260b506392896b53")]
    assert "metode: extractive" in lines[0]
    assert lines[1] == "Utvalg: alt erklæringen har om temaet «eldre»."
    assert lines[2] == "Korpusversjon 260b5063 · søk 21 ms · svar 0,6 ms"
    generated = replace(_answer("x"), backend="openai", decision="generated", timings_ms={"retrieve": 3, "model": 850})
    assert "språkmodell" in _unescape(ui.about_answer(generated, "x")[0])
    assert _unescape(ui.about_answer(generated, "260b5063")[-1]).endswith("søk 3,0 ms · modell 850 ms")


# --- broad answers in groups ----------------------------------------------------------------------


def _cited(unit_id: str, chapter: str, section: str, kind: str = "pledge") -> Chunk:
    return replace(_chunk(unit_id, kind=kind), chapter=chapter, section=section)


def _broad(text: str, chunks: Sequence[Chunk], decision: str = "theme") -> Answer:
    return replace(_answer(text, chunks), decision=decision)


THEME_TEXT = (
    "Erklæringen har seks løfter om eldre, i to kapitler:\n\n"
    "**Helse og eldre › Flere eldre innbyggere**\n- a [1].\n- b [2].\n- c [3].\n\n"
    "**Helse og eldre › Fastlegeordningen**\n- d [4].\n\n"
    "**Kultur › Kulturbyen**\n- «e» [5].\n- f [6]."
)
THEME_CHUNKS = [
    *(_cited(f"h/e/{i}", "Helse og eldre", "Flere eldre innbyggere") for i in (1, 2, 3)),
    _cited("h/f/1", "Helse og eldre", "Fastlegeordningen"),
    _cited("k/p1", "Kultur", "Kulturbyen", kind="passage"),
    _cited("k/k/1", "Kultur", "Kulturbyen"),
]


def test_a_broad_answer_across_chapters_is_grouped_by_chapter_with_counts() -> None:
    grouped = ui.group_answer(_broad(THEME_TEXT, THEME_CHUNKS))
    assert grouped is not None
    assert _unescape(grouped.lead) == "Erklæringen har seks løfter om eldre, i to kapitler:"
    assert [_unescape(g.label) for g in grouped.groups] == ["**Helse og eldre** · 4 løfter", "**Kultur** · 2 punkter"]
    helse = grouped.groups[0].markdown.split("\n")
    assert "**Flere eldre innbyggere**" in helse and "**Fastlegeordningen**" in helse
    assert "- a :blue-badge[1]\\." in helse
    assert grouped.groups[1].unit_ids == ("k/p1", "k/k/1")


def test_a_broad_answer_in_one_chapter_is_grouped_by_heading() -> None:
    text = (
        "Kapittelet «Helse og eldre» har 12 løfter under to overskrifter. De mest sentrale:\n"
        "- «Byrådet skal X.» [1]\n\n**Flere eldre innbyggere** (8 løfter)\n- a [2].\n- b [3].\n"
        "- … og 6 til under denne overskriften.\n\n**Fastlegeordningen** (4 løfter)\n- d [4].\n- e [5]."
    )
    chunks = [
        _cited("h/p1/s1", "Helse og eldre", "Flere eldre innbyggere", kind="statement"),
        _cited("h/e/1", "Helse og eldre", "Flere eldre innbyggere"),
        _cited("h/e/2", "Helse og eldre", "Flere eldre innbyggere"),
        _cited("h/f/1", "Helse og eldre", "Fastlegeordningen"),
        _cited("h/f/2", "Helse og eldre", "Fastlegeordningen"),
    ]
    grouped = ui.group_answer(_broad(text, chunks, decision="chapter"))
    assert grouped is not None
    assert "Byrådet skal X" in _unescape(grouped.loose)
    assert [_unescape(g.label) for g in grouped.groups] == [
        "**Flere eldre innbyggere** (8 løfter)",
        "**Fastlegeordningen** (4 løfter)",
    ]
    assert "og 6 til under denne overskriften" in _unescape(grouped.groups[0].markdown)


def test_answers_that_are_not_long_lists_are_not_grouped() -> None:
    assert ui.group_answer(_broad(THEME_TEXT, THEME_CHUNKS[:4])) is None  # few points
    assert ui.group_answer(replace(_broad(THEME_TEXT, THEME_CHUNKS), refused=True)) is None
    assert ui.group_answer(_broad(THEME_TEXT, THEME_CHUNKS, decision="generated")) is None
    prose = "«a» [1] «b» [2] «c» [3] «d» [4] «e» [5]\n\nErklæringen har sju kapitler."
    assert ui.group_answer(_broad(prose, THEME_CHUNKS[:5], decision="document")) is None


def test_a_count_after_a_bold_line_stays_outside_the_bold() -> None:
    assert ui.answer_markdown("**Skole** (5 løfter)") == "**Skole** \\(5 løfter\\)"


# --- the pledge browser: headings, themes, hidden hits, links ------------------------------------


@pytest.fixture(scope="module")
def library(fake_assistant: Assistant) -> ui.Library:
    return ui.load_library(fake_assistant.settings)


def test_heading_labels_are_short_unique_and_in_document_order() -> None:
    units = [*PLEDGES, _unit("c/s4/1", "C", "S4", subheading="Skole")]
    assert ui.heading_labels(units) == {"S1": "S1", "S2 › Skole": "S2 › Skole", "S3": "S3", "S4 › Skole": "S4 › Skole"}
    assert ui.heading_options(PLEDGES, "A") == [ui.ALL, "S1", "Skole"]
    assert [u.id for u in ui.filter_pledges(PLEDGES, ui.ALL, "Skole")] == ["a/s2/1"]


def test_themes_as_filters(library: ui.Library) -> None:
    names = [t.name for t in library.themes]
    assert names == sorted(names, key=ui.norwegian_order)
    assert ui.norwegian_order("Åpen") > ui.norwegian_order("Østbyen") > ui.norwegian_order("Zoo")
    eldre = ui.theme_named(library.themes, "eldre")
    assert eldre is not None and eldre.name == "Eldre"
    # The pledges under the headings wholly about a theme belong to it.
    assert "helse-og-eldre/flere-eldre-innbyggere/1" in eldre.pledges
    assert ui.theme_named(library.themes, "elderly") is eldre
    assert ui.theme_named(library.themes, "noe helt annet") is None
    only = ui.apply_filters(library.pledges, ui.BrowserFilters(theme="Eldre"), library.themes, None)
    assert {u.id for u in only} == eldre.pledges


def test_the_filter_that_hides_every_hit_is_named(library: ui.Library) -> None:
    sykkel = [u.id for u in library.pledges if "sykkel" in u.text]
    filters = ui.BrowserFilters(chapter="Helse og eldre", query="sykkel")
    assert ui.apply_filters(library.pledges, filters, library.themes, sykkel) == []
    hiding, shown = ui.hiding_filters(library.pledges, filters, library.themes, sykkel)
    assert hiding == ["kapittel"] and shown == len(sykkel)
    assert ui.hidden_message(filters, hiding, shown) == (
        f"Søket «sykkel» har {shown} treff, men ingen med kapittelet «Helse og eldre»."
    )
    # Two filters that only together hide everything are both named.
    both = ui.BrowserFilters(chapter="Byutvikling", theme="Eldre")
    hiding, shown = ui.hiding_filters(library.pledges, both, library.themes, None)
    assert set(hiding) <= {"kapittel", "tema"} and hiding and shown > 0
    assert ui.hiding_filters(library.pledges, ui.BrowserFilters(), library.themes, None) == ([], 0)
    assert ui.BrowserFilters(theme="Eldre").without(["tema"]) == ui.BrowserFilters()


def test_broad_answers_link_to_their_pledges_in_the_browser(library: ui.Library) -> None:
    def link(decision: str, name: str) -> ui.BrowserLink | None:
        answer = replace(_answer("x"), decision=decision, scope=AnswerScope(decision, name))
        return ui.browser_link(answer, library.pledges, library.themes)

    chapter = link("chapter", "Helse og eldre")
    assert chapter is not None and chapter.filters == ui.BrowserFilters(chapter="Helse og eldre")
    theme = link("theme", "kollektivtrafikk")
    assert theme is not None and theme.filters == ui.BrowserFilters(theme="Kollektivtrafikk")
    heading = link("heading", "Fastlegeordningen")
    assert heading is not None
    assert heading.filters == ui.BrowserFilters(chapter="Helse og eldre", heading="Fastlegeordningen")
    assert link("theme", "noe annet") is None and link("ranked", "") is None and link("attribute", "tall") is None
