"""The extractive answer stage: question validation, answer composition, heading and topic selection."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from assistant.answering import (
    ASPECT_MARGIN,
    GROUP_BY_CHAPTER_FROM,
    NEAREST_INTRO,
    REFUSAL,
    Selection,
    _near_title_word,
    clean_question,
    compose,
    heading_ranked_first,
    select,
    select_heading,
    select_topic,
    with_marker,
)
from assistant.core import Assistant
from assistant.errors import InvalidQuestionError
from assistant.relevance import Calibration, TermIndex, has_summary_intent
from assistant.retrieval import Scored
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


# --- compose -------------------------------------------------------------------------------


def _chunk(n: int, text: str, chapter: str = "Helse og eldre", kind: str = "pledge") -> Chunk:
    return Chunk(
        id=f"c/s/{n}",
        unit_id=f"c/s/{n}",
        kind=kind,  # type: ignore[arg-type]
        text=text,
        retrieval_text=text,
        chapter=chapter,
        section="Seksjon",
        subheading=None,
        doc_id="doc",
        number=n,
        n_tokens=10,
    )


def _selection(*chunks: Chunk) -> Selection:
    return Selection(cited=chunks, refused=False, related=(), mode="ranked", answerability=9.0)


def test_one_pledge_reads_as_a_sentence_with_the_marker_before_the_period() -> None:
    text, citations = compose(_selection(_chunk(1, "innføre fritt brukervalg i hjemmetjenestene.")))
    assert text == "Byrådet vil innføre fritt brukervalg i hjemmetjenestene [1]."
    assert [(c.n, c.chunk.unit_id) for c in citations] == [(1, "c/s/1")]


def test_second_pledge_reads_byradet_vil_ogsa() -> None:
    text, citations = compose(
        _selection(_chunk(1, "bygge ny ishall."), _chunk(2, "utrede et nytt bad"), _chunk(3, "ruste opp parker,"))
    )
    assert text == (
        "Byrådet vil bygge ny ishall [1]. Byrådet vil også utrede et nytt bad [2]. "
        "Byrådet vil også ruste opp parker [3]."
    )
    assert [c.n for c in citations] == [1, 2, 3]


def test_passage_is_quoted() -> None:
    text, _ = compose(_selection(_chunk(1, "Kommunen vokser.", kind="passage"), _chunk(2, "bygge skoler.")))
    assert text == "Erklæringen sier: «Kommunen vokser.» [1] Byrådet vil bygge skoler [2]."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bygge mer.", "bygge mer [1]."),
        ("bygge mer", "bygge mer [1]."),
        ("bygge mer,", "bygge mer [1]."),
        ("bygge mer?", "bygge mer [1]?"),
        ("bygge «mer»", "bygge «mer» [1]."),
        ("bygge mer.  ", "bygge mer [1]."),
    ],
)
def test_with_marker(text: str, expected: str) -> None:
    assert with_marker(text, "[1]") == expected


def test_many_citations_are_grouped_under_chapter_headings() -> None:
    chunks = [
        _chunk(1, "styrke fastlegeordningen.", chapter="Helse og eldre"),
        _chunk(2, "bygge sykkelveier.", chapter="Miljø, næring og samferdsel"),
        _chunk(3, "bygge nye sykehjem.", chapter="Helse og eldre"),
        _chunk(4, "Byen skal bli grønnere.", chapter="Miljø, næring og samferdsel", kind="passage"),
        _chunk(5, "senke fartsgrensen", chapter="Miljø, næring og samferdsel"),
    ]
    assert len(chunks) == GROUP_BY_CHAPTER_FROM
    text, citations = compose(_selection(*chunks))
    assert text.splitlines() == [
        "Leangen-erklæringen har 5 punkter om dette. Byrådet vil:",
        "",
        "**Helse og eldre**",
        "- styrke fastlegeordningen [1].",
        "- bygge nye sykehjem [3].",
        "",
        "**Miljø, næring og samferdsel**",
        "- bygge sykkelveier [2].",
        "- «Byen skal bli grønnere.» [4]",
        "- senke fartsgrensen [5].",
    ]
    assert [c.n for c in citations] == [1, 2, 3, 4, 5]


def test_many_citations_from_one_chapter_have_no_heading() -> None:
    text, _ = compose(_selection(*[_chunk(n, f"gjøre tiltak nummer {n}.") for n in range(1, 7)]))
    lines = text.splitlines()
    assert lines[0] == "Leangen-erklæringen har 6 punkter om dette. Byrådet vil:"
    assert lines[1:] == [f"- gjøre tiltak nummer {n} [{n}]." for n in range(1, 7)]


def test_refusal_is_the_fixed_sentence_without_citations() -> None:
    related = (_chunk(1, "bygge skoler."),)
    selection = Selection(cited=(), refused=True, related=related, mode="refused", answerability=0.1)
    assert compose(selection) == (REFUSAL, ())
    assert REFUSAL == ("Leangen-erklæringen sier ikke noe om dette, så jeg kan ikke svare på det ut fra plattformen.")


# --- heading and topic selection on the real corpus ----------------------------------------


@pytest.fixture(scope="module")
def chunks(fake_assistant: Assistant) -> list[Chunk]:
    return fake_assistant.index.chunks


@pytest.fixture(scope="module")
def terms(fake_assistant: Assistant, chunks: list[Chunk]) -> TermIndex:
    return TermIndex(chunks, fake_assistant.index.decompounder)


def _heading(question: str, chunks: list[Chunk], terms: TermIndex) -> list[str] | None:
    positions = select_heading(question, terms.query_words(question), chunks, terms)
    return None if positions is None else [chunks[i].unit_id for i in positions]


def test_select_heading_kulturskolen(fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex) -> None:
    selected = _heading("Hva står det om kulturskolen?", chunks, terms)
    expected = [u.id for u in fake_assistant.corpus.pledges if u.subheading == "Kulturskolen"]
    assert len(expected) == 6
    assert selected == expected


def test_select_heading_fastlegeordningen(chunks: list[Chunk], terms: TermIndex) -> None:
    assert _heading("hva vil byrådet gjøre med fastlegeordningen?", chunks, terms) == [
        "helse-og-eldre/fastlegeordningen/1",
        "helse-og-eldre/fastlegeordningen/2",
    ]


def test_select_heading_prefers_the_most_specific_heading(chunks: list[Chunk], terms: TermIndex) -> None:
    # "barne" also prefixes "Barnehage"; the heading naming all three words wins.
    selected = _heading("Hva står det om barne- og familietjenesten (BFT)?", chunks, terms)
    assert selected is not None
    assert len(selected) == 7
    assert all("/barne-og-familietjenesten-bft/" in s for s in selected)


def test_select_heading_whole_section(fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex) -> None:
    selected = _heading("Hva står det om helseplattformen?", chunks, terms)
    assert selected == [u.id for u in fake_assistant.corpus.pledges if u.section == "Helseplattformen"]
    assert selected is not None and len(selected) == 3


def test_select_heading_skole_is_not_skolehelsetjenesten(
    fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex
) -> None:
    expected = [u.id for u in fake_assistant.corpus.pledges if u.subheading == "Skole"]
    assert len(expected) == 19
    assert _heading("Hva står det om skole?", chunks, terms) == expected


def test_select_heading_named_without_its_acronym(
    fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex
) -> None:
    expected = [u.id for u in fake_assistant.corpus.pledges if u.subheading == "Barne- og familietjenesten (BFT)"]
    assert len(expected) == 7
    assert _heading("Hva står det om barne- og familietjenesten?", chunks, terms) == expected


def test_select_heading_a_short_word_does_not_name_a_compound_it_begins(chunks: list[Chunk], terms: TermIndex) -> None:
    # "barne-" must not make "Barnehage" the heading asked about.
    selected = _heading("Kva står det om barnevernet og barne- og familietenesta?", chunks, terms)
    assert selected and all("/barne-og-familietjenesten-bft/" in s for s in selected)
    # An ending is still allowed: "tro" names "Tros- og livssynsmangfold".
    selected = _heading("Hva står det om tro og livssynsmangfold?", chunks, terms)
    assert selected and all("/tros-og-livssynsmangfold/" in s for s in selected)


@pytest.mark.parametrize(
    ("stem", "term", "expected"),
    [
        ("familietenest", "familietjenest", True),
        ("fastlegeordning", "fastlegeordning", True),
        ("helseplattform", "helseplatform", True),
        ("familitenest", "familietjenest", False),  # two letters off a word of 14
        ("skulehelsetenest", "skolehelsetjenest", True),  # two letters off a word of 17
        ("skal", "skol", False),  # short heading words stay exact
    ],
)
def test_near_title_word(stem: str, term: str, expected: bool) -> None:
    assert _near_title_word(stem, term) is expected


BFT = "Barne- og familietjenesten (BFT)"
TROS = "Tros- og livssynsmangfold"
BOA = "Bo- og aktivitetstilbudet (BoA)"
SKOLEHELSE = "Skolehelsetjenesten"
BARNEHAGE = "Barnehage"
PSYKISK_HELSE = "Psykisk helse og rustjenester"


@pytest.mark.parametrize(
    ("question", "subheading"),
    [
        ("Kva står det om barne- og familietenesta?", BFT),
        ("Jeg trenger alle punktene om barnevernet og familietjenesten – hele lista.", BFT),
        ("Hva står det under Tros- og livssynsmangfold?", TROS),
        ("livssynsmangfold", TROS),
        ("Gi meg alle punktene om BoA-tjenesten for folk med funksjonsnedsettelser.", BOA),
        ("Hva står det om BFT?", BFT),
        ("Kva står det under overskrifta om skulehelsetenesta? Ta med alle punkta.", SKOLEHELSE),
        ("Gi meg samtlige kulepunkter under «rus og psykisk helse» i sosialkapitlet.", PSYKISK_HELSE),
        ("Hva lover byrådet under punktet om religion og livssyn? Kirkebygg, domkirka osv.", TROS),
        ("Hva er planene på barnehageområdet?", BARNEHAGE),
        ("kan du liste alt byrådet vil gjøre under psykisk helse og rus?", PSYKISK_HELSE),
        ("Gi meg alt byrådet sier om kvinnehelse", "Kvinnehelse"),
        ("Can you list what the platform says it will do about Helseplattformen?", "Helseplattformen"),
    ],
    ids=[
        "nynorsk-one-letter-off",
        "elided-barne",
        "elided-tros",
        "elided-tros-bare",
        "acronym-boa",
        "acronym-bft",
        "nynorsk-two-letters-off-a-long-word",
        "short-word-begins-a-compound-beside-exact-words",
        "under-punktet-om",
        "a-field-named-by-its-first-part",
        "liste-alt",
        "gi-meg-alt-a-section",
        "can-you-list-what-a-section",
    ],
)
def test_select_heading_names_the_whole_sub_heading(
    fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex, question: str, subheading: str
) -> None:
    # A section without sub-headings is its own heading («Kvinnehelse»).
    expected = [u.id for u in fake_assistant.corpus.pledges if (u.subheading or u.section) == subheading]
    assert expected
    assert _heading(question, chunks, terms) == expected


def test_select_heading_with_extra_words_needs_the_best_ranked_chunk_under_it(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    question = "Gi meg en oversikt over integrering av innvandrere – språk, arbeid, barnehage osv."
    query = terms.query_words(question)
    under = next(i for i, c in enumerate(chunks) if c.subheading == "Barnehage" and c.kind == "pledge")
    elsewhere = next(i for i, c in enumerate(chunks) if c.subheading == "Arbeid og velferd" and c.kind == "pledge")
    assert select_heading(question, query, chunks, terms, best_ranked=under) is not None
    assert select_heading(question, query, chunks, terms, best_ranked=elsewhere) is None
    # A question naming only the heading needs no such support.
    plain = "Hva står det om barnehage?"
    assert select_heading(plain, terms.query_words(plain), chunks, terms, best_ranked=elsewhere) is not None


def test_select_topic_reads_i_byen_as_the_city_not_a_topic(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Kva vil byrådet gjere for studentane i byen?"
    positions = select_topic(question, terms.query_words(question), chunks, terms)
    assert positions is not None and len(positions) >= 4
    assert all("student" in chunks[i].text.lower() for i in positions)


def test_select_topic_a_compound_keyword_is_not_matched_by_its_first_half_alone(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    # "brukerrom" splits only as "bruker"/"bruk": that must not list every pledge using "bruk".
    question = "brukerrom"
    positions = select_topic(question, terms.query_words(question), chunks, terms) or []
    assert all("brukerrom" in chunks[i].text.lower() for i in positions)


def test_a_question_for_a_number_is_not_a_request_for_a_list(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Hvor mange studenter er det i Trondheim ifølge erklæringen?"
    assert _heading(question, chunks, terms) is None
    assert select_topic(question, terms.query_words(question), chunks, terms) is None
    # Without the number, the same word is a topic several pledges name.
    assert _heading("Hva står det om studenter?", chunks, terms) is not None


@pytest.mark.parametrize(
    "question",
    ["Hva vil byrådet gjøre med sykkelparkering?", "kulturskolen og idrettshaller", "Hva mener byrådet om NATO?"],
    ids=["no-heading", "extra-words-without-summary-intent", "off-topic"],
)
def test_select_heading_returns_none_when_no_heading_is_named(
    chunks: list[Chunk], terms: TermIndex, question: str
) -> None:
    assert _heading(question, chunks, terms) is None


def test_select_topic_all_pledges_about_sykkel(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "alle løfter om sykkel"
    assert has_summary_intent(question)
    positions = select_topic(question, terms.query_words(question), chunks, terms)
    assert positions is not None
    selected = [chunks[i] for i in positions]
    assert len(selected) >= 4
    assert all(c.kind == "pledge" for c in selected)
    assert all(re.search(r"sykkel|sykl", c.text, flags=re.IGNORECASE) for c in selected)
    texts = " ".join(c.text for c in selected)
    for phrase in ("sykkeltiltak", "sykkelparkeringsplasser", "sykkelveinett"):
        assert phrase in texts


def test_select_topic_with_several_words_needs_summary_intent(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Hva vil byrådet gjøre for sykkel og parkering?"
    assert not has_summary_intent(question)
    assert select_topic(question, terms.query_words(question), chunks, terms) is None


def test_select_topic_takes_a_one_word_topic_named_by_several_pledges(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Hva vil byrådet gjøre for studenter?"
    positions = select_topic(question, terms.query_words(question), chunks, terms)
    assert positions is not None and len(positions) >= 4
    assert all("student" in chunks[i].text.lower() for i in positions)


def test_select_topic_leaves_a_one_word_topic_with_one_pledge_to_ranking(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Hva med Brundalsforbindelsen?"
    assert select_topic(question, terms.query_words(question), chunks, terms) is None


@pytest.mark.parametrize(
    "question",
    [
        "Kan du sette opp en oversikt over alt byrådet lover om sykefravær? Jeg tenker både helse, skole og kommunen.",
        "sykefravær kommunen – alle løfter, uansett kapittel",
        "Journalist her: hva står det om sykefravær i byrådserklæringen?",
        "Jeg skal følge opp byrådet. List opp alle løftene om å få ned sykefraværet, uansett sektor.",
    ],
    ids=["topic-after-om", "document-words-are-not-topic-words", "byradserklaeringen", "light-verb-in-the-om-phrase"],
)
def test_select_topic_finds_the_topic_of_a_request_for_a_list(
    chunks: list[Chunk], terms: TermIndex, question: str
) -> None:
    positions = select_topic(question, terms.query_words(question), chunks, terms)
    assert positions is not None and len(positions) >= 3
    assert all("sykefravær" in chunks[i].text.lower() for i in positions)


def test_select_topic_does_not_take_a_list_s_first_item_for_the_topic(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "Vi har ventet i ni måneder. Hva sier byrådet om ventetid, PPT og disse spesialtilbudene?"
    assert select_topic(question, terms.query_words(question), chunks, terms) is None
    # A clause after the comma is no list: the topic still comes from the «om» phrase.
    clause = "Alle løfter om sykefravær i kommunen, på tvers av sektorene – list dem opp."
    assert select_topic(clause, terms.query_words(clause), chunks, terms)


def test_select_topic_returns_none_for_unknown_topic(chunks: list[Chunk], terms: TermIndex) -> None:
    question = "alle løfter om romfart"
    assert select_topic(question, terms.query_words(question), chunks, terms) is None


def _under(chunks: list[Chunk], heading: str) -> list[int]:
    return [i for i, c in enumerate(chunks) if c.kind == "pledge" and (c.subheading or c.section) == heading]


WOMENS_HEALTH = "Could you list everything in the platform's section on women's health?"


def test_a_request_for_a_list_gets_the_heading_its_best_ranked_chunks_agree_on(chunks: list[Chunk]) -> None:
    kvinnehelse, samferdsel = _under(chunks, "Kvinnehelse"), _under(chunks, "Samferdsel")
    ranked = [*kvinnehelse[:3], samferdsel[0]]
    assert heading_ranked_first(WOMENS_HEALTH, ranked, chunks) == kvinnehelse
    assert len(kvinnehelse) >= 4


@pytest.mark.parametrize(
    ("question", "ranked_from"),
    [
        (WOMENS_HEALTH, ("Kvinnehelse", "Kvinnehelse", "Studenthelse")),
        ("Is women's health a priority for the council?", ("Kvinnehelse",) * 3),
        ("How many pledges are there about women's health? List everything.", ("Kvinnehelse",) * 3),
        ("alle løftene om buss og bil", ("Samferdsel",) * 3),
    ],
    ids=["best-three-disagree", "no-request-for-a-list", "asks-for-a-number", "heading-too-large"],
)
def test_no_heading_from_the_ranking(chunks: list[Chunk], question: str, ranked_from: tuple[str, ...]) -> None:
    ranked = [_under(chunks, heading)[n] for n, heading in enumerate(ranked_from)]
    assert heading_ranked_first(question, ranked, chunks) is None


def test_a_request_for_a_list_below_the_threshold_is_refused_not_listed(chunks: list[Chunk], terms: TermIndex) -> None:
    ranked = _under(chunks, "Kvinnehelse")[:3]
    dense = np.zeros(len(chunks))
    dense[ranked] = [0.9, 0.89, 0.88]
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    listed = select(WOMENS_HEALTH, scored, ranked, chunks, terms, Calibration(threshold=float("-inf")))
    assert listed.mode == "section" and [c.subheading or c.section for c in listed.cited] == ["Kvinnehelse"] * len(
        _under(chunks, "Kvinnehelse")
    )
    refused = select(WOMENS_HEALTH, scored, ranked, chunks, terms, Calibration(threshold=float("inf")))
    assert refused.refused


# --- end to end through the assistant ------------------------------------------------------


def test_ask_kulturskolen_cites_the_six_pledges_grouped(fake_assistant: Assistant) -> None:
    answer = fake_assistant.ask("Hva står det om kulturskolen?")
    assert not answer.refused
    assert [c.chunk.subheading for c in answer.citations] == ["Kulturskolen"] * 6
    assert answer.text.startswith("Leangen-erklæringen har 6 punkter om dette. Byrådet vil:")
    assert answer.text.count("\n- ") == 6


def test_a_trondersk_request_for_a_section_gets_the_whole_section(fake_assistant: Assistant) -> None:
    answer = fake_assistant.ask("Ka står det om kulturskolen i erklæringa dokkers?")
    assert [c.chunk.subheading for c in answer.citations] == ["Kulturskolen"] * 6


def test_a_request_for_every_pledge_on_a_named_topic_is_not_refused(fake_settings: FakeSettings) -> None:
    """However little one pledge stands out, a topic several pledges name word for word is listed."""
    assistant = Assistant(fake_settings(refusal_threshold=1e9))
    answer = assistant.ask("alle løfter om sykkel")
    assert not answer.refused
    assert len(answer.citations) >= 4
    assert all(re.search(r"sykkel|sykl", c.text, flags=re.IGNORECASE) for c in answer.citations)
    # Without the request for everything, or on a topic no pledge names, the threshold decides.
    assert assistant.ask("Hva vil byrådet gjøre med sykkel?").refused
    assert assistant.ask("alle løfter om romfart").refused


def test_an_answer_just_above_the_threshold_says_it_is_only_the_nearest() -> None:
    chunk = _chunk(1, "innføre fritt brukervalg i hjemmetjenestene.")
    text, citations = compose(Selection((chunk,), False, (), "nearest", 1.0))
    assert text == f"{NEAREST_INTRO} Byrådet vil innføre fritt brukervalg i hjemmetjenestene [1]."
    assert [c.chunk for c in citations] == [chunk]
    assert not compose(_selection(chunk))[0].startswith(NEAREST_INTRO)


@pytest.mark.parametrize(("hedge_margin", "decision"), [(0.0, "ranked"), (2e9, "nearest")])
def test_the_hedge_margin_decides_between_ranked_and_nearest(
    fake_settings: FakeSettings, hedge_margin: float, decision: str
) -> None:
    assistant = Assistant(fake_settings())
    assistant.with_calibration(Calibration(threshold=-1e9, hedge_margin=hedge_margin))
    answer = assistant.ask("Jeg finner ingen doktor som tar imot nye pasienter")
    assert (answer.decision, answer.refused) == (decision, False)
    assert answer.text.startswith(NEAREST_INTRO) == (decision == "nearest")
    # A named section is answered in full, never hedged.
    assert assistant.ask("Hva står det om kulturskolen?").decision == "section"


def test_a_word_that_only_begins_a_heading_also_gets_the_pledges_elsewhere_that_use_it(
    fake_assistant: Assistant,
) -> None:
    # "studenter" begins «Studenthelse», but students are also named under Samferdsel.
    answer = fake_assistant.ask("Hva vil byrådet gjøre for studenter?")
    texts = [c.text for c in answer.citations]
    assert answer.decision == "section"
    assert sum(1 for c in answer.citations if c.chunk.section == "Studenthelse") == 4
    assert "redusere kollektivprisene for studenter." in texts
    assert all("student" in t.lower() for t in texts)
    # A question naming the heading itself gets that heading alone.
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
    )
    assert selection.refused is refused


def test_looks_english() -> None:
    from assistant.text import looks_english

    assert looks_english("What will the council do about cycling?")
    assert not looks_english("Hva vil byrådet gjøre med sykkel?")
    assert not looks_english("Jeg er 23 og studerer")


def test_english_words_do_not_steer_which_pledge_is_cited(chunks: list[Chunk], terms: TermIndex) -> None:
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
    selection = select(question, scored, [unmatched, matched], chunks, terms, calibration)
    assert selection.cited[0].id == chunks[unmatched].id


# --- the unknown-word rule -----------------------------------------------------------------


def _hedged_selection(
    chunks: list[Chunk], terms: TermIndex, shift: float, *, above_band: bool = False, strong: float = 0.0
) -> Selection:
    question = "Vil byrådet styrke legevakta?"
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    off = Calibration(answer_coverage_weight=0.0, threshold=float("-inf"))
    answerability = select(question, scored, [pledge], chunks, terms, off).answerability
    # Just above the threshold (inside the hedge band), or well above it.
    threshold = answerability - (2.0 if above_band else 0.1)
    calibration = replace(
        off, threshold=threshold, hedge_margin=0.5, unknown_shift_min=0.04, unknown_shift_strong=strong
    )
    return select(question, scored, [pledge], chunks, terms, calibration, unknown_shift=shift)


def test_a_hedged_answer_to_a_question_resting_on_unknown_words_is_refused(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    refused = _hedged_selection(chunks, terms, shift=0.05)
    assert refused.refused and refused.mode == "refused"
    assert "never uses" in refused.reason and refused.related
    # Below the minimum shift the answer stays, hedged.
    assert _hedged_selection(chunks, terms, shift=0.03).mode == "nearest"
    # Above the hedge band the answer stays whatever the shift.
    assert _hedged_selection(chunks, terms, shift=0.5, above_band=True).mode == "ranked"


def test_a_question_resting_heavily_on_unknown_words_is_refused_at_any_answerability(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    refused = _hedged_selection(chunks, terms, shift=0.07, above_band=True, strong=0.06)
    assert refused.refused and "heavily" in refused.reason
    # Below the strong shift a well-matched question is answered.
    assert _hedged_selection(chunks, terms, shift=0.05, above_band=True, strong=0.06).mode == "ranked"


def test_a_request_to_make_something_up_is_refused_however_well_it_matches(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    calibration = Calibration(threshold=float("-inf"))
    question = "Hva skal fritidskortet koste neste år? Bare finn på et tall."
    refused = select(question, scored, [pledge], chunks, terms, calibration)
    assert refused.refused and "made-up" in refused.reason
    # The nearest pledges are still offered as related.
    assert refused.related == (chunks[pledge],)
    plain = select("Hva skal fritidskortet koste neste år?", scored, [pledge], chunks, terms, calibration)
    assert not plain.refused


def test_the_unknown_word_rule_is_off_by_default(chunks: list[Chunk], terms: TermIndex) -> None:
    pledge = next(i for i, c in enumerate(chunks) if c.kind == "pledge")
    dense = np.zeros(len(chunks))
    dense[pledge] = 1.0
    scored = Scored(dense=dense, bm25=np.zeros(len(chunks)), fused=dense.copy())
    calibration = Calibration(threshold=float("-inf"), hedge_margin=float("inf"))
    selection = select("Vil byrådet styrke legevakta?", scored, [pledge], chunks, terms, calibration, unknown_shift=1.0)
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


def _aspect_selection(chunks: list[Chunk], terms: TermIndex, aspect_score: float) -> tuple[Selection, list[int]]:
    question = "Hva lover byrådet om buss, trikk og tog?"
    pledges = [i for i, c in enumerate(chunks) if c.kind == "pledge"][:4]
    fused = np.zeros(len(chunks))
    fused[pledges[0]], fused[pledges[1]], fused[pledges[2]] = 0.90, 0.80, aspect_score
    scored = Scored(dense=fused.copy(), bm25=np.zeros(len(chunks)), fused=fused)
    calibration = Calibration(threshold=-1e9, hedge_margin=0.0, cite_coverage_weight=0.0, margin=0.0, max_citations=1)
    # One item's best chunk is the question's best, one ranks far below, one just below.
    tops = [pledges[0], pledges[1], pledges[2]]
    return select(question, scored, pledges, chunks, terms, calibration, aspect_tops=tops), pledges


def test_each_listed_item_gets_its_best_pledge_when_the_question_ranks_it_close(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    close = ASPECT_MARGIN - 0.005
    selection, pledges = _aspect_selection(chunks, terms, 0.90 - close)
    assert selection.mode == "ranked"
    assert [c.id for c in selection.cited] == [chunks[pledges[0]].id, chunks[pledges[2]].id]
    far, _ = _aspect_selection(chunks, terms, 0.90 - ASPECT_MARGIN - 0.005)
    assert [c.id for c in far.cited] == [chunks[pledges[0]].id]


def test_the_assistant_searches_each_listed_item(fake_assistant: Assistant) -> None:
    listed = fake_assistant.retrieve("Hva lover byrådet om buss, trikk og tog?")
    assert len(listed.aspect_tops) == 3
    for top, item in zip(listed.aspect_tops, ("buss", "trikk", "tog"), strict=True):
        alone = fake_assistant.retrieve(f"Hva lover byrådet om {item}?")
        assert top == int(alone.ranked[0])
    assert fake_assistant.retrieve("Hva lover byrådet om buss?").aspect_tops == ()


def test_a_request_for_a_list_for_people_who_do_something_names_the_activity(
    chunks: list[Chunk], terms: TermIndex
) -> None:
    question = "list opp alt byrådet lover for folk som sykler"
    positions = select_topic(question, terms.query_words(question), chunks, terms)
    assert positions is not None and len(positions) >= 4
    assert all(re.search(r"sykkel|sykl", chunks[i].text, flags=re.IGNORECASE) for i in positions)
