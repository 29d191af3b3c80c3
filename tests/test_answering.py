"""The extractive answer stage: question validation, and what a unit question cites or why it is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from assistant.answering import ASPECT_MARGIN, Selection, clean_question, select
from assistant.composing import NEAREST_INTRO, NOT_GIVEN, REFUSAL
from assistant.core import Assistant
from assistant.errors import InvalidQuestionError
from assistant.relevance import Calibration, TermIndex
from assistant.retrieval import Scored
from assistant.scope import Catalogue, resolve_scope
from assistant.types import Chunk
from tests.conftest import FakeSettings

# --- clean_question ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Spørsmålet er tomt"),
        ("   \t\n  ", "Spørsmålet er tomt"),
        ("\x00\x07\x1b\u200b\ufffd", "Spørsmålet er tomt"),
        ("?!? ... ---", "Spørsmålet inneholder ingen ord"),
        ("🚲🎉👍", "Spørsmålet inneholder ingen ord"),
        ("x" * 2001, "Spørsmålet er for langt (2001 tegn)"),
    ],
    ids=["empty", "whitespace", "only-control-chars", "punctuation", "emoji", "too-long"],
)
def test_clean_question_rejects_with_norwegian_message(raw: str, message: str) -> None:
    with pytest.raises(InvalidQuestionError) as caught:
        clean_question(raw, 2000)
    assert str(caught.value).startswith(message)
    assert caught.value.code == "invalid_question"


def test_clean_question_length_limit_is_inclusive_and_counts_the_tidied_text() -> None:
    assert clean_question("x" * 2000, 2000) == "x" * 2000
    assert clean_question("  " + "x" * 2000 + "  \n", 2000) == "x" * 2000
    with pytest.raises(InvalidQuestionError, match="under 60 tegn"):
        clean_question("sykkel " * 10, 60)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hva med sykkel?", "Hva med sykkel?"),
        ("  Hva   med\n\nsykkel?\t", "Hva med sykkel?"),
        ("Hva\x00 med\x1b sykkel?\x07", "Hva med sykkel?"),
        ("Hva med\u2028sykkel?\u2029", "Hva med sykkel?"),
        ("Hva med \ufffdsykkel?", "Hva med sykkel?"),
        ("2025", "2025"),
    ],
    ids=["plain", "whitespace", "control-chars", "line-separators", "replacement-char", "digits"],
)
def test_clean_question_tidies(raw: str, expected: str) -> None:
    assert clean_question(raw, 2000) == expected


def test_clean_question_removes_soft_hyphen_inside_a_word() -> None:
    assert clean_question("Hva med fritids\u00adkort?", 2000) == "Hva med fritidskort?"


# --- end to end through the assistant ------------------------------------------------------


def test_ask_kulturskolen_cites_the_six_pledges_grouped(fake_assistant: Assistant) -> None:
    answer = fake_assistant.ask("Hva står det om kulturskolen?")
    assert not answer.refused
    assert [c.chunk.subheading for c in answer.citations] == ["Kulturskolen"] * 6
    assert answer.scope.kind == "heading" and answer.scope.name == "Kulturskolen"
    assert answer.text.startswith("Under overskriften «Kulturskolen» har erklæringen seks løfter:")
    assert answer.text.count("\n- ") == 6


def test_a_trondersk_request_for_a_section_gets_the_whole_section(fake_assistant: Assistant) -> None:
    answer = fake_assistant.ask("Ka står det om kulturskolen i erklæringa dokkers?")
    assert [c.chunk.subheading for c in answer.citations] == ["Kulturskolen"] * 6


def test_a_request_for_every_pledge_on_a_named_topic_is_not_refused(fake_settings: FakeSettings) -> None:
    """However little one pledge stands out, a theme the question names is listed whole."""
    assistant = Assistant(fake_settings(refusal_threshold=1e9))
    answer = assistant.ask("alle løfter om sykkel")
    sykkel = next(t for t in assistant.catalogue.themes if t.key == "sykkel")
    assert not answer.refused
    assert [c.chunk.unit_id for c in answer.citations] == list(sykkel.units)
    # A question about a measure, or a topic no pledge names, is for the threshold to decide.
    assert assistant.ask("Vil byrådet bygge flere sykkelveier?").refused
    assert assistant.ask("alle løfter om romfart").refused


@pytest.mark.parametrize(("hedge_margin", "decision"), [(0.0, "ranked"), (2e9, "nearest")])
def test_the_hedge_margin_decides_between_ranked_and_nearest(
    fake_settings: FakeSettings, hedge_margin: float, decision: str
) -> None:
    assistant = Assistant(fake_settings())
    assistant.with_calibration(Calibration(threshold=-1e9, hedge_margin=hedge_margin))
    answer = assistant.ask("Jeg finner ingen doktor som tar imot nye pasienter")
    assert (answer.decision, answer.refused) == (decision, False)
    assert answer.text.startswith(NEAREST_INTRO) == (decision == "nearest")
    # A named heading is answered in full, never hedged.
    assert assistant.ask("Hva står det om kulturskolen?").decision == "heading"


def test_a_group_the_theme_index_names_gets_its_pledges_across_chapters(fake_assistant: Assistant) -> None:
    # «studenter» begins «Studenthelse», but students are also named under Samferdsel: the theme
    # index holds both.
    answer = fake_assistant.ask("Hva vil byrådet gjøre for studenter?")
    texts = [c.text for c in answer.citations]
    assert (answer.decision, answer.scope.kind, answer.scope.name) == ("theme", "theme", "studenter")
    assert sum(1 for c in answer.citations if c.chunk.section == "Studenthelse" and c.chunk.kind == "pledge") == 4
    assert "redusere kollektivprisene for studenter." in texts
    # A question naming a heading itself gets that heading alone.
    named = fake_assistant.ask("Hva står det om kulturskolen?")
    assert named.citations and all(c.chunk.subheading == "Kulturskolen" for c in named.citations)


def test_ask_with_forced_refusal_returns_the_refusal(fake_settings: FakeSettings) -> None:
    assistant = Assistant(fake_settings(refusal_threshold=1e9))
    answer = assistant.ask("Hva mener byrådet om NATO?")
    assert answer.refused
    assert answer.text == REFUSAL
    assert answer.citations == ()
    assert len(answer.related) == 3
    assert len(answer.retrieved) == 10
    # A question the platform has words for, refused by the threshold, says so in the log.
    below = assistant.ask("Hva vil byrådet gjøre med fastlegeordningen i Midtbyen?")
    assert below.refused and below.refusal_reason is not None
    assert below.refusal_reason.startswith("answerability ") and "< threshold 1000000000.00" in below.refusal_reason


@pytest.mark.parametrize(
    ("question", "refused"),
    [
        ("hundeparker", True),
        ("Hva mener byrådet om NATO?", True),
        ("What will the council do about NATO?", False),  # English: no Norwegian word could match
        ("fritidskort", False),
    ],
)
def test_a_question_none_of_whose_words_the_platform_uses_is_refused(
    fake_assistant: Assistant, question: str, refused: bool
) -> None:
    from dataclasses import replace

    from assistant.answering import select

    _, terms = fake_assistant._ensure_index()
    retrieved = fake_assistant.retrieve(question)
    never_by_threshold = replace(fake_assistant.calibration, threshold=float("-inf"))
    selection = select(
        question,
        retrieved.scored,
        [int(i) for i in retrieved.ranked],
        fake_assistant.index.chunks,
        terms,
        never_by_threshold,
        fake_assistant.catalogue,
    )
    assert selection.refused is refused


def test_looks_english() -> None:
    from assistant.text import looks_english

    assert looks_english("What will the council do about cycling?")
    assert not looks_english("Hva vil byrådet gjøre med sykkel?")
    assert not looks_english("Jeg er 23 og studerer")


def test_english_words_do_not_steer_which_pledge_is_cited(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    # English words match the English search expansions of some pledges ("new"), which says
    # little about which pledge answers: an English question's citations follow the scores.
    question = "What is new for cyclists?"
    query = terms.query_words(question)
    pledges = [i for i, c in enumerate(chunks) if c.kind == "pledge"]
    matched = next(i for i in pledges if terms.coverage(query, i) > 0)
    unmatched = next(i for i in pledges if terms.coverage(query, i) == 0)
    fused = np.zeros(len(chunks))
    fused[unmatched], fused[matched] = 0.90, 0.89
    scored = Scored(dense=fused.copy(), bm25=np.zeros(len(chunks)), fused=fused)
    calibration = Calibration(threshold=-1e9, cite_coverage_weight=1.0, margin=0.0, max_citations=1)
    selection = select(question, scored, [unmatched, matched], chunks, terms, calibration, catalogue)
    assert selection.cited[0].id == chunks[unmatched].id


# --- the unknown-word rule -----------------------------------------------------------------


def _hedged_selection(
    chunks: list[Chunk],
    terms: TermIndex,
    catalogue: Catalogue,
    shift: float,
    *,
    above_band: bool = False,
    strong: float = 0.0,
) -> Selection:
    question = "Vil byrådet styrke legevakta?"
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    off = Calibration(answer_coverage_weight=0.0, threshold=float("-inf"))
    answerability = select(question, scored, [pledge], chunks, terms, off, catalogue).answerability
    # Just above the threshold (inside the hedge band), or well above it.
    threshold = answerability - (2.0 if above_band else 0.1)
    calibration = replace(
        off, threshold=threshold, hedge_margin=0.5, unknown_shift_min=0.04, unknown_shift_strong=strong
    )
    return select(question, scored, [pledge], chunks, terms, calibration, catalogue, unknown_shift=shift)


def test_a_hedged_answer_to_a_question_resting_on_unknown_words_is_refused(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    refused = _hedged_selection(chunks, terms, catalogue, shift=0.05)
    assert refused.refused and refused.mode == "refused"
    assert "never uses" in refused.reason and refused.related
    # Below the minimum shift the answer stays, hedged.
    assert _hedged_selection(chunks, terms, catalogue, shift=0.03).mode == "nearest"
    # Above the hedge band the answer stays whatever the shift.
    assert _hedged_selection(chunks, terms, catalogue, shift=0.5, above_band=True).mode == "ranked"


def test_a_question_resting_heavily_on_unknown_words_is_refused_at_any_answerability(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    refused = _hedged_selection(chunks, terms, catalogue, shift=0.07, above_band=True, strong=0.06)
    assert refused.refused and "heavily" in refused.reason
    # Below the strong shift a well-matched question is answered.
    assert _hedged_selection(chunks, terms, catalogue, shift=0.05, above_band=True, strong=0.06).mode == "ranked"


def test_a_request_to_make_something_up_is_refused_however_well_it_matches(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    calibration = Calibration(threshold=float("-inf"))
    question = "Hva skal fritidskortet koste neste år? Bare finn på et tall."
    scope = resolve_scope(question, [pledge], chunks, terms, catalogue)
    refused = select(question, scored, [pledge], chunks, terms, calibration, catalogue, scope)
    assert refused.refused and "made-up" in refused.reason
    # The nearest pledges are still offered as related.
    assert refused.related == (chunks[pledge],)
    plain = "Hva skal fritidskortet koste neste år?"
    scope = resolve_scope(plain, [pledge], chunks, terms, catalogue)
    assert not select(plain, scored, [pledge], chunks, terms, calibration, catalogue, scope).refused


def test_the_unknown_word_rule_is_off_by_default(chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue) -> None:
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    calibration = Calibration(threshold=float("-inf"), hedge_margin=float("inf"))
    selection = select(
        "Vil byrådet styrke legevakta?", scored, [pledge], chunks, terms, calibration, catalogue, unknown_shift=1.0
    )
    assert not selection.refused


def test_retrieval_measures_how_much_a_question_rests_on_unknown_words(fake_assistant: Assistant) -> None:
    assert fake_assistant.retrieve("Vil byrådet styrke legevakta i sentrum?").unknown_shift > 0.0
    assert fake_assistant.retrieve("Hva vil byrådet gjøre med fastlegeordningen?").unknown_shift == 0.0
    # English words are all unknown to the platform: leaving them out would say nothing.
    assert fake_assistant.retrieve("What will the council do about the emergency room?").unknown_shift == 0.0


def test_a_refusal_by_the_unknown_word_rule_says_why_in_the_log(fake_settings: FakeSettings) -> None:
    assistant = Assistant(fake_settings())
    assistant.with_calibration(Calibration(threshold=-1e9, hedge_margin=1e12, unknown_shift_min=1e-9))
    answer = assistant.ask("Vil byrådet styrke legevakta i sentrum?")
    assert answer.refused and answer.text == REFUSAL
    assert answer.refusal_reason is not None and "never uses" in answer.refusal_reason


# --- questions that list what they ask about -----------------------------------------------


def _aspect_selection(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue, aspect_score: float
) -> tuple[Selection, list[int]]:
    question = "Hva lover byrådet om buss, trikk og tog?"
    pledges = [i for i, c in enumerate(chunks) if c.kind == "pledge"][:4]
    fused = np.zeros(len(chunks))
    fused[pledges[0]], fused[pledges[1]], fused[pledges[2]] = 0.90, 0.80, aspect_score
    scored = Scored(dense=fused.copy(), bm25=np.zeros(len(chunks)), fused=fused)
    calibration = Calibration(threshold=-1e9, hedge_margin=0.0, cite_coverage_weight=0.0, margin=0.0, max_citations=1)
    # One item's best chunk is the question's best, one ranks far below, one just below.
    tops = [pledges[0], pledges[1], pledges[2]]
    return select(question, scored, pledges, chunks, terms, calibration, catalogue, aspect_tops=tops), pledges


def test_each_listed_item_gets_its_best_pledge_when_the_question_ranks_it_close(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    close = ASPECT_MARGIN - 0.005
    selection, pledges = _aspect_selection(chunks, terms, catalogue, 0.90 - close)
    assert selection.mode == "ranked"
    assert [c.id for c in selection.cited] == [chunks[pledges[0]].id, chunks[pledges[2]].id]
    far, _ = _aspect_selection(chunks, terms, catalogue, 0.90 - ASPECT_MARGIN - 0.005)
    assert [c.id for c in far.cited] == [chunks[pledges[0]].id]


def test_the_assistant_searches_each_listed_item(fake_assistant: Assistant) -> None:
    listed = fake_assistant.retrieve("Hva lover byrådet om buss, trikk og tog?")
    assert len(listed.aspect_tops) == 3
    for top, item in zip(listed.aspect_tops, ("buss", "trikk", "tog"), strict=True):
        alone = fake_assistant.retrieve(f"Hva lover byrådet om {item}?")
        assert top == int(alone.ranked[0])
    assert fake_assistant.retrieve("Hva lover byrådet om buss?").aspect_tops == ()


def test_a_question_for_a_number_the_nearest_pledges_do_not_give_says_so(
    chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue
) -> None:
    no_number = next(i for i, c in enumerate(chunks) if c.text == "sette inn tiltak for å få ned sykefraværet.")
    with_number = next(i for i, c in enumerate(chunks) if "2000 kroner" in c.text)
    dense = np.zeros(len(chunks))
    dense[[no_number, with_number]] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    calibration = Calibration(threshold=float("-inf"), max_citations=1)
    lacking = select("Hvor mange nye lærere skal ansettes?", scored, [no_number], chunks, terms, calibration, catalogue)
    assert lacking.mode == "not_given" and not lacking.refused
    assert lacking.cited == (chunks[no_number],) and "figure" in lacking.reason
    given = select("Hvor mye er fritidskortet verdt?", scored, [with_number], chunks, terms, calibration, catalogue)
    assert given.mode == "ranked" and given.cited == (chunks[with_number],)
    # A date: «Når …?» needs a year or a deadline in what is cited.
    when = select("Når skal det skje?", scored, [no_number], chunks, terms, calibration, catalogue)
    assert when.mode == "not_given" and NOT_GIVEN["date"]
