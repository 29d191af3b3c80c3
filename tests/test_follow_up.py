"""Follow-ups made standalone without a model: each kind keeps the thread of the conversation."""

from __future__ import annotations

import pytest

from assistant.core import Assistant
from assistant.follow_up import answer_points, referenced_point, standalone, topic_span, with_qualifier
from assistant.generation import heuristic_standalone

SYKKEL = "Alle løfter om sykkel"
SYKKEL_ANSWER = (
    "Erklæringen har åtte løfter om sykkel:\n\n"
    "**Miljø, næring og samferdsel › Samferdsel**\n"
    "- gjennomføre alle prosjekt i plan for sykkeltiltak på kommunal vei så raskt som praktisk mulig [1].\n"
    "- etablere flere sykkelparkeringsplasser som er trygge og enkle å bruke [2]."
)
FASTLEGE = "Hva vil byrådet gjøre med fastlegeordningen?"
FASTLEGE_ANSWER = (
    "Byrådet vil styrke fastlegeordningen [1]. Byrådet vil også vurdere forsøk med tverrfaglige "
    "fastlegekontor, som kan ha større fokus på forebygging og mestring [2]."
)
BASSENG_ANSWER = (
    "Erklæringen svarer kanskje ikke direkte på dette. Det nærmeste den sier: Byrådet vil realisere "
    "bydelsbasseng øst på Moholt. Reguleringsarbeid bør startes opp allerede i 2024 [1]."
)


@pytest.mark.parametrize(
    ("follow_up", "expected"),
    [
        ("og hva med kollektiv?", "Alle løfter om kollektiv"),
        ("Hva med kollektiv da?", "Alle løfter om kollektiv"),
        ("og eldre?", "Alle løfter om eldre"),
        ("kva med skulen?", "Alle løfter om skulen"),
    ],
)
def test_a_new_topic_keeps_the_request_for_a_list(follow_up: str, expected: str) -> None:
    assert standalone(follow_up, [(SYKKEL, SYKKEL_ANSWER)]) == expected


def test_a_new_topic_keeps_the_question_frame() -> None:
    history = [(FASTLEGE, FASTLEGE_ANSWER)]
    assert standalone("Hva med kvinnehelse?", history) == "Hva vil byrådet gjøre med kvinnehelse?"


def test_a_new_group_replaces_the_one_asked_about_or_narrows_the_question() -> None:
    assert standalone("og for studenter?", [("Hva gjør byrådet for eldre?", "…")]) == "Hva gjør byrådet for studenter?"
    narrowed = standalone("og for studenter?", [(FASTLEGE, FASTLEGE_ANSWER)])
    assert narrowed == "Hva vil byrådet gjøre med fastlegeordningen for studenter?"
    assert standalone("og i Midtbyen?", [(SYKKEL, SYKKEL_ANSWER)]) == "Alle løfter om sykkel i Midtbyen"


def test_why_asks_about_the_point_given_or_the_topic() -> None:
    assert standalone("hvorfor?", [(FASTLEGE, FASTLEGE_ANSWER)]) == "Hvorfor vil byrådet satse på fastlegeordningen?"
    history = [("Kjem det nytt symjebasseng?", BASSENG_ANSWER)]
    assert standalone("Hvorfor det?", history) == "Hvorfor vil byrådet realisere bydelsbasseng øst på Moholt?"


@pytest.mark.parametrize(
    ("follow_up", "expected"),
    [
        ("mer om det siste punktet", "etablere flere sykkelparkeringsplasser som er trygge og enkle å bruke"),
        (
            "Fortell mer om punkt 1",
            "gjennomføre alle prosjekt i plan for sykkeltiltak på kommunal vei så raskt som praktisk mulig",
        ),
        (
            "det første punktet?",
            "gjennomføre alle prosjekt i plan for sykkeltiltak på kommunal vei så raskt som praktisk mulig",
        ),
        ("hva betyr [2]?", "etablere flere sykkelparkeringsplasser som er trygge og enkle å bruke"),
    ],
)
def test_a_point_of_the_answer_is_searched_by_its_own_words(follow_up: str, expected: str) -> None:
    assert standalone(follow_up, [(SYKKEL, SYKKEL_ANSWER)]) == expected


def test_a_point_the_answer_does_not_have_falls_back_to_the_question() -> None:
    assert referenced_point("punkt 7", SYKKEL_ANSWER) is None
    assert standalone("punkt 7", [(SYKKEL, SYKKEL_ANSWER)]) == f"{SYKKEL} punkt 7"


def test_more_about_a_topic_is_not_a_point() -> None:
    assert standalone("mer om sykkelveier", [(SYKKEL, SYKKEL_ANSWER)]) == f"{SYKKEL} mer om sykkelveier"


def test_the_points_of_an_answer_leave_out_leads_and_bullets() -> None:
    assert answer_points(BASSENG_ANSWER) == [
        (1, "realisere bydelsbasseng øst på Moholt. Reguleringsarbeid bør startes opp allerede i 2024")
    ]
    quoted = (
        "Kapittelet har 12 løfter. De mest sentrale:\n«Byrådet skal gjøre Y.» [1]\n\n**Skole** (5 løfter)\n- a b [2]."
    )
    assert answer_points(quoted) == [(1, "Byrådet skal gjøre Y."), (2, "a b")]
    assert answer_points("Ingen kilder her.") == []


def test_topic_span_skips_the_question_frame() -> None:
    span = topic_span(FASTLEGE)
    assert span is not None and FASTLEGE[span[0] : span[1]] == "fastlegeordningen"
    assert topic_span("Hva vil byrådet gjøre?") is None
    assert with_qualifier("Alle løfter om sykkel.", "for", "studenter") == "Alle løfter om sykkel for studenter."


def test_a_long_new_question_stands_on_its_own_and_no_history_changes_nothing() -> None:
    long_question = "Hva vil byrådet gjøre med fastlegeordningen i Trondheim kommune?"
    assert standalone(long_question, [(SYKKEL, SYKKEL_ANSWER)]) == long_question
    assert standalone("og for studenter?", []) == "og for studenter?"
    assert heuristic_standalone("og hva med kollektiv?", [(SYKKEL, SYKKEL_ANSWER)]) == "Alle løfter om kollektiv"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Hva gjør byrådet for eldre?", "Hva gjør byrådet for eldre?"),
        ("Alle løfter om sykkel", "Alle løfter om sykkel"),
        ("Hvor mye koster det?", f"{FASTLEGE} Hvor mye koster det?"),
        ("Når skal dette skje?", f"{FASTLEGE} Når skal dette skje?"),
    ],
)
def test_a_short_question_of_its_own_stands_alone_one_that_points_back_does_not(question: str, expected: str) -> None:
    assert standalone(question, [(FASTLEGE, FASTLEGE_ANSWER)]) == expected


@pytest.mark.parametrize("small_talk", ["hei", "takk!", "hva kan du?"])
def test_small_talk_after_a_question_is_answered_as_small_talk(fake_assistant: Assistant, small_talk: str) -> None:
    """Not glued to the last question («Hva vil byrådet gjøre med fastlegeordningen? hei»)."""
    answer = fake_assistant.ask(small_talk, [(FASTLEGE, FASTLEGE_ANSWER)])
    assert answer.standalone_question == small_talk
    assert answer.decision == "chat" and not answer.citations
