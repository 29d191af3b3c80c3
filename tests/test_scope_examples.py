"""The broad questions of issue 17, answered by the real model over the real index: each gets a
complete, correct answer.

Integration tests: they read the project's index (built by `make index`, which `make test` runs
first) and load multilingual-e5-small; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assistant.core import Assistant
from assistant.errors import IndexMissingError
from assistant.settings import load_settings
from assistant.types import Answer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def assistant() -> Iterator[Assistant]:
    real = Assistant(load_settings(auto_build_index=False, _env_file=None))
    try:
        real.warm_up()
    except IndexMissingError as missing:
        pytest.fail(f"{missing} (`make index` builds it; `make test` does so before the tests)")
    yield real


def _ids(answer: Answer) -> list[str]:
    return [c.chunk.unit_id for c in answer.citations]


def _theme(assistant: Assistant, key: str) -> tuple[str, ...]:
    return next(t.units for t in assistant.catalogue.themes if t.key == key)


def test_what_the_council_does_for_older_people(assistant: Assistant) -> None:
    answer = assistant.ask("Hva gjør byrådet for eldre?")
    assert (answer.scope.kind, answer.scope.name) == ("theme", "eldre")
    assert _ids(answer) == list(_theme(assistant, "eldre"))
    texts = " ".join(c.text for c in answer.citations)
    for pledge in ("fritt brukervalg", "bydelskafeene", "Kulturelle spaserstokken", "Heimdal helse- og velferdssenter"):
        assert pledge in texts
    assert answer.text.startswith("Erklæringen har 20 løfter om eldre, i to kapitler:")


def test_public_transport(assistant: Assistant) -> None:
    answer = assistant.ask("Hva vil de gjøre med kollektivtrafikken?")
    assert answer.scope.kind == "theme"
    texts = " ".join(c.text for c in answer.citations)
    for pledge in ("smart prismodell", "bysone", "Trønderbanen", "trikkelinjen"):
        assert pledge in texts


@pytest.mark.parametrize(
    "question", ["Hva vil byrådet gjøre med fastlegeordningen?", "Jeg har ikke fastlege. Hva vil byrådet gjøre?"]
)
def test_the_gp_scheme_with_its_central_commitment(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    ids = _ids(answer)
    assert ids[:3] == [
        "helse-og-eldre/fastlegeordningen/p1/s4",  # «Byrådet vil jobbe for at alle … har sin egen fastlege»
        "helse-og-eldre/fastlegeordningen/1",
        "helse-og-eldre/fastlegeordningen/2",
    ]
    # «fastlege» does not match «fast»: nothing on business land or the municipal plan.
    assert not any("naeringsareal" in i or "bolig-og-byutvikling" in i for i in ids)


@pytest.mark.parametrize(
    ("question", "chapter"),
    [
        ("Oppsummer kapittelet om oppvekst og utdanning", "Oppvekst og utdanning"),
        ("Kan du oppsummere hovedpunktene i kapittelet om finans og organisasjon?", "Finans og organisasjon"),
    ],
)
def test_a_chapter_summary(assistant: Assistant, question: str, chapter: str) -> None:
    answer = assistant.ask(question)
    assert not answer.refused and (answer.scope.kind, answer.scope.name) == ("chapter", chapter)
    assert answer.text.startswith(f"Kapittelet «{chapter}» har ")
    assert len(answer.citations) >= 4 and all(c.chunk.chapter == chapter for c in answer.citations)


@pytest.mark.parametrize("question", ["Hvem står bak plattformen?", "Hvem er med i byrådet?"])
def test_who_is_behind_the_platform(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    assert answer.scope.kind == "document" and not answer.refused
    assert "Høyre, MDG og Venstre" in answer.text
    assert "innledning/p1" in _ids(answer)


def test_pledges_with_figures_or_deadlines(assistant: Assistant) -> None:
    answer = assistant.ask("Hvilke løfter har tall eller tidsfrister?")
    assert answer.scope.kind == "attribute" and len(answer.citations) >= 15
    texts = " ".join(c.text for c in answer.citations)
    for figure in ("2000 kroner", "3%", "1800", "30 km/t"):
        assert figure in texts


def test_named_building_projects(assistant: Assistant) -> None:
    answer = assistant.ask("Hvilke konkrete byggeprosjekter forplikter byrådet seg til?")
    assert answer.scope.kind == "attribute" and not answer.refused and len(answer.citations) >= 10
    texts = " ".join(c.text for c in answer.citations)
    for project in ("ishall på Tiller", "bydelsbasseng", "Heimdal helse- og velferdssenter"):
        assert project in texts


def test_a_family_with_children_in_kindergarten_at_heimdal(assistant: Assistant) -> None:
    answer = assistant.ask("Jeg har to barn i barnehage på Heimdal, hva betyr plattformen for oss?")
    subheadings = [c.chunk.subheading for c in answer.citations]
    assert subheadings.count("Barnehage") == 9  # every kindergarten pledge
    assert any("Heimdal" in c.text for c in answer.citations)


@pytest.mark.parametrize(
    "question", ["Hvor mange nye lærere skal ansettes?", "Hvor mange nye sykehjemsplasser blir det?"]
)
def test_a_figure_the_platform_does_not_give_is_not_pretended(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    assert answer.decision == "not_given"
    assert answer.text.startswith("Erklæringen oppgir ikke noe tall for dette. Det nærmeste den sier:")


def test_another_municipality_is_refused(assistant: Assistant) -> None:
    answer = assistant.ask("Hvor stort er Oslo kommunes budsjett for 2025?")
    assert answer.refused and answer.citations == () and answer.scope.kind == "none"
