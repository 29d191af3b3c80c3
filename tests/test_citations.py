"""The citation guard (pure): out-of-range markers removed and counted, renumbering, flags."""

from __future__ import annotations

import re

import pytest

from assistant.citations import guard


def test_valid_markers_are_renumbered_in_order_of_appearance() -> None:
    result = guard("Først [3]. Så [1]. Igjen [3].", n_sources=3)
    assert result.text == "Først [1]. Så [2]. Igjen [1]."
    assert result.sources == (3, 1)
    assert result.removed == 0


@pytest.mark.parametrize("marker", ["[4]", "[0]", "[99]"])
def test_a_marker_outside_the_sources_is_removed_with_its_claim(marker: str) -> None:
    result = guard(f"Byrådet vil bygge skoler [1]. Byrådet vil legge ned flyplassen {marker}.", n_sources=3)
    assert result.text == "Byrådet vil bygge skoler [1]."
    assert result.removed == 1
    assert result.dropped_sentences == (f"Byrådet vil legge ned flyplassen {marker}.",)


def test_a_sentence_keeps_its_valid_markers_and_loses_the_invalid_ones() -> None:
    result = guard("Byrådet vil redusere kollektivprisene [2][7].", n_sources=3)
    assert result.text == "Byrådet vil redusere kollektivprisene [1]."
    assert result.sources == (2,)
    assert result.removed == 1
    assert result.dropped_sentences == ()


@pytest.mark.parametrize(
    ("text", "expected", "sources"),
    [
        ("A [1, 3].", "A [1][2].", (1, 3)),
        ("A [1; 2].", "A [1][2].", (1, 2)),
        ("A [1-3].", "A [1][2][3].", (1, 2, 3)),
        ("A [ 2 ].", "A [1].", (2,)),
    ],
)
def test_marker_forms(text: str, expected: str, sources: tuple[int, ...]) -> None:
    result = guard(text, n_sources=3)
    assert result.text == expected
    assert result.sources == sources


def test_claims_without_citation_are_flagged_and_removed() -> None:
    result = guard("Dette er en lang setning uten noen kilde i det hele tatt. Kort [1].", n_sources=1)
    assert result.uncited_sentences == ("Dette er en lang setning uten noen kilde i det hele tatt.",)
    assert result.text == "Kort [1]."


def test_short_connective_lines_stay_without_a_citation() -> None:
    result = guard("Byrådet vil blant annet:\n- redusere kollektivprisene for studenter [1]", n_sources=1)
    assert result.text == "Byrådet vil blant annet:\n- redusere kollektivprisene for studenter [1]"
    assert result.uncited_sentences == ()


@pytest.mark.parametrize("text", ["Byrådet vil bygge ca. 40 skoler og bl.a. en arena [9].", "Jf. planen f.eks. [9]."])
def test_an_abbreviation_does_not_split_a_claim(text: str) -> None:
    result = guard(f"Riktig påstand her [1]. {text}", n_sources=3)
    assert result.text == "Riktig påstand her [1]."
    assert result.dropped_sentences == (text,)


def test_a_removed_marker_cannot_splice_a_new_one() -> None:
    result = guard("Byrådet vil innføre et fritidskort [1] [1[99]2].", n_sources=3)
    assert "[12]" not in result.text
    assert set(re.findall(r"\[(\d+)\]", result.text)) <= {"1"}


def test_no_citation_at_all() -> None:
    result = guard("Jeg tror byrådet vil gjøre mye bra.", n_sources=5)
    assert not result.has_citations
    assert result.sources == ()


def test_every_marker_in_the_result_points_to_a_source() -> None:
    result = guard("A [5]. B [2]. C [1][9]. D [3].\n- E [4]\n- F [12]", n_sources=4)
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", result.text)}
    assert numbers == set(range(1, len(result.sources) + 1))
    assert result.removed == 3
