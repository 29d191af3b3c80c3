"""The extractive answer's words: sentences for a few pledges, grouped lists for many, a lead for a
broad scope, a chapter summary, the document answer."""

from __future__ import annotations

import pytest

from assistant.answering import Selection
from assistant.composing import (
    GROUP_BY_CHAPTER_FROM,
    NEAREST_INTRO,
    NOT_GIVEN,
    REFUSAL,
    WELCOME,
    compose,
    with_marker,
)
from assistant.scope import Catalogue, Scope, topic_names
from assistant.types import Chunk


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


def test_many_citations_are_grouped_under_their_headings() -> None:
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
        "**Helse og eldre › Seksjon**",
        "- styrke fastlegeordningen [1].",
        "- bygge nye sykehjem [3].",
        "",
        "**Miljø, næring og samferdsel › Seksjon**",
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


# --- broad scopes --------------------------------------------------------------------------


def _scope_selection(catalogue: Catalogue, scope: Scope, units: list[str]) -> Selection:
    return Selection(tuple(catalogue.chunk(u) for u in units), False, (), scope.kind, 9.0, scope=scope)


def test_a_theme_answer_leads_with_how_many_and_where_then_lists_by_heading(catalogue: Catalogue) -> None:
    eldre = next(t for t in catalogue.themes if t.key == "eldre")
    scope = Scope("theme", topic_names([eldre]), eldre.units, (eldre,))
    text, citations = compose(_scope_selection(catalogue, scope, list(eldre.units)), catalogue=catalogue)
    lines = text.splitlines()
    chapters = len({c.chunk.chapter for c in citations})
    assert lines[0] == f"Erklæringen har {len(eldre.units)} løfter om eldre, i {('to', 'tre')[chapters - 2]} kapitler:"
    assert "**Helse og eldre › Flere eldre innbyggere**" in lines
    assert len(citations) == len(eldre.units) and text.count("\n- ") == len(eldre.units)


def test_a_heading_answer_names_the_heading_and_quotes_its_prose_commitment(catalogue: Catalogue) -> None:
    heading = catalogue.heading("Helse og eldre › Fastlegeordningen")
    assert heading is not None
    scope = Scope("heading", heading.name, heading.units, (heading,))
    text, citations = compose(_scope_selection(catalogue, scope, list(heading.units)), catalogue=catalogue)
    assert text.splitlines()[0] == "Under overskriften «Fastlegeordningen» har erklæringen tre løfter:"
    assert "- Byrådet vil jobbe for at alle i Trondheim har sin egen fastlege" in text
    assert [c.chunk.kind for c in citations] == ["statement", "pledge", "pledge"]


def test_a_chapter_summary_gives_each_heading_its_size_and_points_to_the_rest(catalogue: Catalogue) -> None:
    chapter = next(c for c in catalogue.chapters if c.key == "Oppvekst og utdanning")
    scope = Scope("chapter", chapter.name, chapter.units, (chapter,))
    from assistant.answering import central_units

    units = central_units(scope, catalogue)
    text, citations = compose(_scope_selection(catalogue, scope, units), catalogue=catalogue)
    assert text.startswith("Kapittelet «Oppvekst og utdanning» har 48 løfter under fire overskrifter.")
    for heading, size in (("Barnehage", "ni løfter"), ("Skole", "19 løfter"), ("Mestring og inkludering", "14 løfter")):
        assert f"**{heading}** ({size})" in text
    assert "… og 15 til under denne overskriften." in text  # Skole: 19, four cited
    assert len({c.chunk.unit_id for c in citations}) == len(citations)


def test_a_chapter_summary_needs_the_catalogue(catalogue: Catalogue) -> None:
    chapter = catalogue.chapters[1]
    scope = Scope("chapter", chapter.name, chapter.units, (chapter,))
    with pytest.raises(ValueError, match="catalogue"):
        compose(_scope_selection(catalogue, scope, []))


def test_the_document_answer_says_what_the_platform_is_and_lists_its_chapters(catalogue: Catalogue) -> None:
    intro = [u for u in catalogue.chapters[0].units]
    text, citations = compose(
        _scope_selection(catalogue, Scope("document", "Leangen-erklæringen", tuple(intro)), intro), catalogue=catalogue
    )
    assert text.startswith(
        "Leangen-erklæringen er det politiske grunnlaget for byrådet i Trondheim for perioden 2024–2027, "
        "et byråd utgått av Høyre, MDG og Venstre."
    )
    assert "Erklæringen har sju kapitler: Finans og organisasjon (18 løfter)" in text
    assert [c.chunk.unit_id for c in citations] == ["innledning/p1", "innledning/p2"]


def test_not_given_says_so_before_the_nearest_pledge() -> None:
    chunk = _chunk(1, "sette inn tiltak for å få ned sykefraværet.")
    selection = Selection((chunk,), False, (), "not_given", 1.0, scope=Scope("unit", "figure"))
    text, citations = compose(selection)
    assert text == f"{NOT_GIVEN['figure']} Byrådet vil sette inn tiltak for å få ned sykefraværet [1]."
    assert len(citations) == 1


def test_small_talk_gets_the_welcome_without_citations() -> None:
    assert compose(Selection((), False, (), "chat", 0.0, scope=Scope("chat"))) == (WELCOME, ())


def test_an_answer_just_above_the_threshold_says_it_is_only_the_nearest() -> None:
    chunk = _chunk(1, "innføre fritt brukervalg i hjemmetjenestene.")
    text, citations = compose(Selection((chunk,), False, (), "nearest", 1.0))
    assert text == f"{NEAREST_INTRO} Byrådet vil innføre fritt brukervalg i hjemmetjenestene [1]."
    assert [c.chunk for c in citations] == [chunk]
    assert not compose(_selection(chunk))[0].startswith(NEAREST_INTRO)
