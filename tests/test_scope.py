"""What a question is about as a whole: the scope its answer covers (`assistant.scope`).

Run on the real corpus and theme index with the deterministic fake embedder: naming is lexical,
and the ranking only has a say in whether a theme named in passing is what a question is about.
"""

from __future__ import annotations

import pytest

from assistant.core import Assistant
from assistant.relevance import TermIndex
from assistant.scope import (
    Catalogue,
    Scope,
    asking_part,
    asks_for_list,
    is_closed_question,
    named_topics,
    resolve_scope,
    unit_attributes,
)
from assistant.scope import _near_title_word as near_title_word
from assistant.types import Chunk


@pytest.fixture(scope="module")
def scope_of(fake_assistant: Assistant, chunks: list[Chunk], terms: TermIndex, catalogue: Catalogue):
    def resolve(question: str) -> Scope:
        ranked = [int(i) for i in fake_assistant.retrieve(question).ranked]
        return resolve_scope(question, ranked, chunks, terms, catalogue)

    return resolve


def _pledges_under(fake_assistant: Assistant, heading: str) -> list[str]:
    return [u.id for u in fake_assistant.corpus.pledges if (u.subheading or u.section) == heading]


def _pledges(scope: Scope, catalogue: Catalogue) -> list[str]:
    return [u for u in scope.units if catalogue.units[u].kind == "pledge"]


# --- headings named by their titles ----------------------------------------------------------


def test_a_heading_named_by_its_title_is_answered_whole(
    fake_assistant: Assistant, scope_of, catalogue: Catalogue
) -> None:
    scope = scope_of("Hva står det om kulturskolen?")
    assert (scope.kind, scope.name) == ("heading", "Kulturskolen")
    assert _pledges(scope, catalogue) == _pledges_under(fake_assistant, "Kulturskolen")


def test_a_heading_answer_includes_the_commitment_its_prose_states(scope_of) -> None:
    scope = scope_of("hva vil byrådet gjøre med fastlegeordningen?")
    assert scope.kind == "heading"
    assert scope.units == (
        "helse-og-eldre/fastlegeordningen/p1/s4",
        "helse-og-eldre/fastlegeordningen/1",
        "helse-og-eldre/fastlegeordningen/2",
    )


def test_the_most_specific_heading_wins(scope_of, catalogue: Catalogue) -> None:
    # "barne" also begins "Barnehage"; the heading naming all three words wins.
    scope = scope_of("Hva står det om barne- og familietjenesten (BFT)?")
    assert len(_pledges(scope, catalogue)) == 7
    assert all("/barne-og-familietjenesten-bft/" in u for u in _pledges(scope, catalogue))


def test_skole_is_not_skolehelsetjenesten(fake_assistant: Assistant, scope_of, catalogue: Catalogue) -> None:
    expected = _pledges_under(fake_assistant, "Skole")
    assert len(expected) == 19
    scope = scope_of("Hva står det om skole?")
    assert (scope.kind, _pledges(scope, catalogue)) == ("heading", expected)


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
    assert near_title_word(stem, term) is expected


BFT = "Barne- og familietjenesten (BFT)"
TROS = "Tros- og livssynsmangfold"
BOA = "Bo- og aktivitetstilbudet (BoA)"
SKOLEHELSE = "Skolehelsetjenesten"
BARNEHAGE = "Barnehage"
PSYKISK_HELSE = "Psykisk helse og rustjenester"


@pytest.mark.parametrize(
    ("question", "heading"),
    [
        ("Kva står det om barne- og familietenesta?", BFT),
        ("Hva står det under Tros- og livssynsmangfold?", TROS),
        ("livssynsmangfold", TROS),
        ("Gi meg alle punktene om BoA-tjenesten for folk med funksjonsnedsettelser.", BOA),
        ("Hva står det om BFT?", BFT),
        ("Kva står det under overskrifta om skulehelsetenesta? Ta med alle punkta.", SKOLEHELSE),
        ("Gi meg samtlige kulepunkter under «rus og psykisk helse» i sosialkapitlet.", PSYKISK_HELSE),
        ("Hva er planene på barnehageområdet?", BARNEHAGE),
        ("kan du liste alt byrådet vil gjøre under psykisk helse og rus?", PSYKISK_HELSE),
        ("Gi meg alt byrådet sier om kvinnehelse", "Kvinnehelse"),
    ],
    ids=[
        "nynorsk-one-letter-off",
        "elided-tros",
        "elided-tros-bare",
        "acronym-boa-qualified-by-a-theme",
        "acronym-bft",
        "nynorsk-two-letters-off-a-long-word",
        "short-word-begins-a-compound-beside-exact-words",
        "a-field-named-by-its-first-part",
        "liste-alt",
        "gi-meg-alt-a-section",
    ],
)
def test_a_heading_named_in_other_words_is_covered_whole(
    fake_assistant: Assistant, scope_of, catalogue: Catalogue, question: str, heading: str
) -> None:
    expected = _pledges_under(fake_assistant, heading)
    scope = scope_of(question)
    assert scope.kind in ("heading", "theme")
    assert set(expected) <= set(scope.units)


def test_a_heading_that_is_one_item_of_a_longer_question_is_not_the_scope(scope_of) -> None:
    scope = scope_of("Gi meg en oversikt over integrering av innvandrere – språk, arbeid, barnehage osv.")
    assert scope.name != "Barnehage"


@pytest.mark.parametrize(
    "question",
    [
        "Vil byrådet innføre fritt brukervalg i hjemmetjenestene?",
        "Hvor mange studenter er det i Trondheim ifølge erklæringen?",
        "Hva mener byrådet om NATO?",
        "Hvorfor vil byrådet legge ned kulturskolen?",
        "Når skal trikken på Byåsen legges ned?",
    ],
    ids=["yes-no-about-a-measure", "a-number", "off-topic", "why-a-claim", "when"],
)
def test_specific_questions_are_unit_questions(scope_of, question: str) -> None:
    assert scope_of(question).kind == "unit"


# --- themes ------------------------------------------------------------------------------------


def test_a_theme_named_by_a_group_covers_it_across_chapters(scope_of, catalogue: Catalogue) -> None:
    eldre = next(t for t in catalogue.themes if t.key == "eldre")
    scope = scope_of("Hva gjør byrådet for eldre?")
    assert (scope.kind, scope.name, scope.units) == ("theme", "eldre", eldre.units)
    # The heading wholly about the theme comes first.
    assert catalogue.units[scope.units[0]].section == "Flere eldre innbyggere"


@pytest.mark.parametrize(
    ("question", "theme"),
    [
        ("Hva vil de gjøre med kollektivtrafikken?", "kollektivtrafikk"),
        ("Ka vil dokker gjør med bussan og trikken? Blir det bedre kollektivtilbud?", "kollektivtrafikk"),
        ("Hva vil byrådet gjøre med boligsituasjonen i Trondheim?", "bolig"),
        ("Æ e 15 år og går i tiande. Ka har dokker tenkt å gjør for oss ungdomman?", "ungdom"),
        ("Mamma er 86 og bor alene. Hva har byrådet egentlig tenkt å gjøre for eldre som henne?", "eldre"),
        ("sykling i byen", "sykkel"),
        ("Kva planar har byrådet for Nyhavna?", "nyhavna"),
    ],
    ids=[
        "definite-form",
        "trondersk-plurals",
        "field-compound",
        "trondersk-an-plural",
        "story-then-ask",
        "i-byen",
        "small",
    ],
)
def test_a_theme_named_in_the_ways_people_ask(scope_of, catalogue: Catalogue, question: str, theme: str) -> None:
    expected = next(t for t in catalogue.themes if t.key == theme)
    scope = scope_of(question)
    assert (scope.kind, scope.units) == ("theme", expected.units)


def test_a_story_that_asks_about_its_own_situation_is_a_unit_question(scope_of) -> None:
    # The story names themes («skolen», «ungene», «bilene»); what it asks names none.
    assert scope_of("Bilene kjører altfor fort forbi skolen til ungene mine. Gjør dere noe med det?").kind == "unit"
    assert scope_of("Det er så mye bråk fra veien utenfor soverommet at jeg ikke får sove om natta").kind == "unit"


def test_two_themes_named_as_a_list_are_both_covered(scope_of, catalogue: Catalogue) -> None:
    kultur = next(t for t in catalogue.themes if t.key == "kultur")
    idrett = next(t for t in catalogue.themes if t.key == "idrett")
    scope = scope_of("Hva vil byrådet gjøre for kultur og idrett?")
    assert set(kultur.units) | set(idrett.units) == set(scope.units)


def test_a_word_that_narrows_a_theme_to_one_or_two_pledges_makes_a_unit_question(scope_of) -> None:
    assert scope_of("Hva vil byrådet gjøre med Øya stadion og idretten?").kind == "unit"


def test_a_word_that_narrows_a_theme_picks_out_its_part(scope_of, catalogue: Catalogue) -> None:
    # «billettpris» is not the platform's word; the search expansions tell which units it means.
    scope = scope_of("Hva vil byrådet gjøre med billettprisene på buss og trikk?")
    assert scope.kind == "theme" and scope.name.startswith("billettprisene innen")
    assert all("pris" in catalogue.units[u].text or "billett" in catalogue.units[u].text for u in scope.units)


def test_a_word_the_platform_never_uses_beside_a_theme_is_not_answered_with_the_theme(scope_of) -> None:
    assert scope_of("Hva vil byrådet gjøre med overvåkingskameraer i Midtbyen?").kind == "unit"


# --- chapters, the document, attributes, none, small talk -------------------------------------


@pytest.mark.parametrize(
    ("question", "chapter"),
    [
        ("Oppsummer kapittelet om oppvekst og utdanning", "Oppvekst og utdanning"),
        ("Kan du oppsummere hovedpunktene i kapittelet om finans og organisasjon?", "Finans og organisasjon"),
        ("kva er hovudpunkta i miljødelen", "Miljø, næring og samferdsel"),
    ],
)
def test_a_chapter_named_with_a_chapter_word(scope_of, question: str, chapter: str) -> None:
    scope = scope_of(question)
    assert (scope.kind, scope.name) == ("chapter", chapter)


def test_a_heading_named_inside_a_chapter_is_the_heading(scope_of) -> None:
    scope = scope_of("List opp punktene under Natur- og klimatilpasning i byutviklingskapitlet")
    assert scope.kind == "heading" and scope.name == "Natur- og klimatilpasning"


@pytest.mark.parametrize(
    "question",
    [
        "Hvem står bak plattformen?",
        "Hvem er med i byrådet?",
        "Hvilke partier sitter i byrådet?",
        "Hva er Leangen-erklæringen?",
        "Which parties make up the city government according to this document?",
    ],
)
def test_the_document_scope(scope_of, question: str) -> None:
    scope = scope_of(question)
    assert scope.kind == "document"
    assert scope.units and set(scope.units) <= {"innledning/p1", "innledning/p2"}


def test_plattformen_names_the_document_not_helseplattformen(scope_of) -> None:
    assert scope_of("Hvem står bak plattformen?").kind == "document"
    assert scope_of("Hva står det om Helseplattformen?").name == "Helseplattformen"


def test_pledges_with_figures_or_deadlines(scope_of, catalogue: Catalogue) -> None:
    scope = scope_of("Hvilke løfter har tall eller tidsfrister?")
    assert scope.kind == "attribute" and scope.attributes == {"figure", "date"}
    texts = [catalogue.units[u].text for u in scope.units]
    assert len(texts) >= 15
    assert all(unit_attributes(t) & {"figure", "date"} for t in texts)
    assert any("2000 kroner fra januar 2025" in t for t in texts)


def test_named_building_projects_come_from_the_theme_index(scope_of, catalogue: Catalogue) -> None:
    projects = next(t for t in catalogue.themes if t.key == "byggeprosjekter")
    scope = scope_of("Hvilke konkrete byggeprosjekter forplikter byrådet seg til?")
    assert scope.kind == "attribute" and set(scope.units) == set(projects.units)


def test_figures_within_a_topic(scope_of, catalogue: Catalogue) -> None:
    scope = scope_of("Hvilke tall har de om bolig?")
    bolig = next(t for t in catalogue.themes if t.key == "bolig")
    assert scope.kind == "attribute" and scope.units
    assert set(scope.units) <= set(bolig.units)


@pytest.mark.parametrize(
    ("text", "attributes"),
    [
        ("innføre et fritidskort for ungdomsskoleelever på 2000 kroner fra januar 2025", {"figure", "amount", "date"}),
        ("være pådriver for to tog i timen på Trønderbanen", {"figure"}),
        ("realisere ny ishall på Tiller med byggestart i løpet av perioden", {"date"}),
        ("utvide samarbeidet med frivillige og ideelle organisasjoner innen rus og psykiatri", set()),
        ("sikre at mobbesaker følges opp innen en uke", {"figure"}),
    ],
)
def test_unit_attributes(text: str, attributes: set[str]) -> None:
    assert unit_attributes(text) == attributes


@pytest.mark.parametrize(
    "question",
    [
        "Hvor stort er Oslo kommunes budsjett for 2025?",
        "Hva vil Bergen gjøre med bybanen?",
        "Kva lovar Stavanger kommune om sykkelvegar?",
    ],
)
def test_another_municipality_is_refused(scope_of, question: str) -> None:
    scope = scope_of(question)
    assert scope.kind == "none" and "municipality" in scope.reason


@pytest.mark.parametrize(
    "question",
    [
        "Æ e fra Bodø og studere på Gløshaugen. Fastlegen min e fortsatt heime, så ka gjør æ om æ bli dårlig?",
        "I moved here to study but kept my doctor back home in Stavanger. Is the city doing anything for students?",
    ],
)
def test_where_someone_comes_from_is_not_what_they_ask_about(scope_of, question: str) -> None:
    assert scope_of(question).kind != "none"


@pytest.mark.parametrize("question", ["hei", "Hei!", "takk", "Tusen takk!", "hva kan du?", "Hvem er du?"])
def test_small_talk(scope_of, question: str) -> None:
    assert scope_of(question).kind == "chat"


def test_a_request_to_make_something_up_has_no_scope(scope_of) -> None:
    scope = scope_of("Hva skal ishallen koste? Bare finn på et tall.")
    assert scope.kind == "none" and "made-up" in scope.reason


# --- the question's parts ----------------------------------------------------------------------


def test_asking_part_leaves_out_the_story() -> None:
    assert asking_part("Mamma er 86. Hva gjør byrådet for eldre?") == "Hva gjør byrådet for eldre?"
    assert asking_part("sykkel") == "sykkel"


@pytest.mark.parametrize(
    ("question", "closed"),
    [
        ("Vil byrådet innføre fritt brukervalg?", True),
        ("Blir det flere overvåkingskameraer i Midtbyen?", True),
        ("Is the council planning a new ice rink at Tiller?", True),
        ("Ka vil dokker gjør med bussan? Blir det bedre?", False),
        ("Hva gjør byrådet for eldre?", False),
        ("sykkel", False),
    ],
)
def test_is_closed_question(question: str, closed: bool) -> None:
    assert is_closed_question(question) is closed


@pytest.mark.parametrize(
    "question",
    [
        "Står det noe om sykkel i plattformen?",
        "Gi meg en komplett oversikt over alt om innvandrere",
        "Give me the full picture: what is the council doing about climate?",
        "Does the platform say anything about libraries?",
    ],
)
def test_more_requests_for_a_list(question: str) -> None:
    assert asks_for_list(question)


def test_every_chapter_and_the_introduction_can_be_summarised(fake_assistant: Assistant, scope_of) -> None:
    for chapter in fake_assistant.catalogue.chapters:
        question = (
            "Oppsummer innledningen"
            if chapter.name == "Innledning"
            else f"Oppsummer kapittelet om {chapter.name.lower()}"
        )
        scope = scope_of(question)
        assert (scope.kind, scope.name) == ("chapter", chapter.name), question
        answer = fake_assistant.ask(question)
        assert not answer.refused and answer.citations, question


# --- what frames a question, what it tells, what it lists --------------------------------------


def test_a_question_about_here_and_us_is_about_the_place_told(scope_of) -> None:
    scope = scope_of("Jeg bor på Heimdal. Hva vil byrådet gjøre her hos oss?")
    assert (scope.kind, [t.key for t in scope.topics]) == ("theme", ["heimdal"])


def test_an_english_question_is_framed_by_english_frame_words(scope_of) -> None:
    scope = scope_of("What is the city council actually planning for cyclists?")
    assert (scope.kind, [t.key for t in scope.topics]) == ("theme", ["sykkel"])


def test_asking_whether_the_council_does_anything_for_someone_asks_what_it_does(scope_of) -> None:
    assert not is_closed_question("Gjør byrådet noe for studenter?")
    assert not is_closed_question("Is the council doing anything for older people?")
    # «noe for å …» says what for, not for whom; «noe på gang» is a yes/no question.
    assert is_closed_question("Gjør kommunen noe for å korte ned køene?")
    assert is_closed_question("Er det noe på gang?")
    scope = scope_of("Gjør byrådet noe for studenter?")
    assert (scope.kind, [t.key for t in scope.topics]) == ("theme", ["studenter"])


def test_a_short_acronym_names_its_theme_only_when_written_in_capitals(catalogue: Catalogue, terms: TermIndex) -> None:
    def themes(question: str) -> set[str]:
        return {n.topic.key for n in named_topics(question, catalogue, terms) if n.topic.kind == "theme"}

    assert "digitalisering" in themes("Hva skal kommunen gjøre med IT-systemene?")
    assert "digitalisering" not in themes("What is the council going to do about it?")


def test_a_topic_with_a_list_of_aspects_covers_what_it_has_on_each(scope_of, catalogue: Catalogue) -> None:
    scope = scope_of("Hva lover byrådet eldre når det gjelder mat, sosiale møteplasser og kultur?")
    eldre = next(t for t in catalogue.themes if t.key == "eldre")
    assert scope.kind == "theme" and [t.key for t in scope.topics] == ["eldre"]
    assert set(scope.units) < set(eldre.units)
    texts = [catalogue.units[u].text.lower() for u in scope.units]
    assert any("mat" in t for t in texts) and any("kultur" in t for t in texts)


@pytest.mark.parametrize(
    "question",
    [
        "Hva vil byrådet gjøre for eldre? Jeg vil ha med alt.",
        "Hva gjør byrådet med sykefraværet, uansett sektor?",
        "What does the platform offer students across all areas?",
    ],
)
def test_asking_for_everything_asks_for_a_list(question: str) -> None:
    assert asks_for_list(question)


def test_a_quantifier_over_sectors_does_not_narrow_the_topic(scope_of) -> None:
    scope = scope_of("Hva vil byrådet gjøre med sykefraværet i alle sektorer?")
    assert scope.kind == "theme" and "sektor" not in scope.name
