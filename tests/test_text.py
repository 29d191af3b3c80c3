"""Norwegian text normalisation: word tokens, content terms, compound splitting."""

from __future__ import annotations

import pytest

from assistant.corpus import load_corpus
from assistant.text import Decompounder, content_terms, corpus_vocabulary, normalise, stem, words
from tests.conftest import REAL_CORPUS_DIR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Byrådet vil bygge", ["byrådet", "vil", "bygge"]),
        ("Sykkel-veinett", ["sykkel-veinett", "sykkel", "veinett"]),
        ("37.000 studenter", ["37000", "studenter"]),
        ("3,5 prosent", ["3,5", "prosent"]),
        ("LHBTQ+-personer!", ["lhbtq", "personer"]),
        ("ÆØÅ æøå", ["æøå", "æøå"]),
        ("«Hva?» – (kort) svar…", ["hva", "kort", "svar"]),
        ("", []),
    ],
    ids=["plain", "hyphenated", "thousands", "decimal", "symbols", "norwegian-letters", "punctuation", "empty"],
)
def test_words(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_normalise_folds_compatibility_forms_and_quotes() -> None:
    assert normalise("Ｆastlege ’x’ ”y”") == "fastlege 'x' \"y\""


def test_content_terms_drop_stop_words_and_stem() -> None:
    assert content_terms("Hva vil byrådet gjøre med sykkelveiene og barnehagene?") == [
        "byråd",
        "gjør",
        "sykkelvei",
        "barnehag",
    ]


def test_content_terms_can_drop_question_boilerplate() -> None:
    question = "Hva vil byrådet gjøre med sykkelveiene og barnehagene?"
    assert content_terms(question, drop_question_words=True) == ["sykkelvei", "barnehag"]


def test_content_terms_keep_numbers_and_drop_single_letters() -> None:
    assert content_terms("1800 boliger i år x") == ["1800", stem("boliger"), "år"]


@pytest.mark.parametrize(
    ("inflected", "stem_"),
    [("barnehagene", "barnehag"), ("barnehager", "barnehag"), ("barnehage", "barnehag"), ("sykkelen", "sykl")],
)
def test_norwegian_stemming_conflates_inflections(inflected: str, stem_: str) -> None:
    assert stem(inflected) == stem_


@pytest.mark.parametrize(
    "forms",
    [
        ("sykkel", "sykkelen", "sykler", "syklene", "sykle"),
        ("regel", "regler", "reglene"),
        ("middel", "midler"),
        ("mangel", "mangler"),
    ],
)
def test_stemming_folds_the_unstressed_el_of_nouns(forms: tuple[str, ...]) -> None:
    assert len({stem(form) for form in forms}) == 1


@pytest.mark.parametrize(("word", "stem_"), [("modell", "modell"), ("hotell", "hotell"), ("spel", "spel")])
def test_stemming_leaves_stressed_ell_and_short_words(word: str, stem_: str) -> None:
    assert stem(word) == stem_


def test_alt_is_question_boilerplate_not_a_topic() -> None:
    assert content_terms("list opp alt om sykkel", drop_question_words=True) == [stem("sykkel")]


def test_only_stop_words_give_no_terms() -> None:
    assert content_terms("hva er det og om") == []


# --- compounds -----------------------------------------------------------------------------


def test_decompounder_splits_into_vocabulary_parts() -> None:
    splitter = Decompounder(["sykkel", "veinett", "parkering", "plasser"])
    assert splitter.parts("sykkelveinett") == ("sykkel", "veinett")


def test_decompounder_handles_linking_s() -> None:
    splitter = Decompounder(["parkering", "plasser"])
    assert splitter.parts("parkeringsplasser") == ("parkering", "plasser")


def test_decompounder_keeps_known_head_without_known_tail() -> None:
    splitter = Decompounder(["sykkel"])
    assert splitter.parts("sykkelveinett") == ("sykkel",)


@pytest.mark.parametrize("word", ["sykkel", "buss", "bydel", "e-sport", "ski-vm", "2000kroner"])
def test_decompounder_leaves_short_and_non_alphabetic_words_alone(word: str) -> None:
    splitter = Decompounder(["sykkel", "buss", "bydel", "sport", "kroner"])
    assert splitter.parts(word) == ()


def test_decompounder_ignores_vocabulary_words_shorter_than_min_part() -> None:
    splitter = Decompounder(["vei", "nett", "sykkel"])
    # "vei" is too short to be a part, so neither "vei" nor "veinett" is found.
    assert splitter.parts("sykkelveinett") == ("sykkel",)
    assert Decompounder(["vei", "nett"]).parts("veinettet") == ()


def test_decompounder_on_the_corpus_vocabulary() -> None:
    vocabulary = corpus_vocabulary(u.text for u in load_corpus(REAL_CORPUS_DIR).units)
    splitter = Decompounder(vocabulary)
    assert splitter.parts("sykkelparkeringsplasser") == ("sykkel", "parkeringsplasser")
    assert "sykkel" in splitter.parts("sykkelveinett")
    terms = splitter.terms("Hvor er sykkelparkeringsplassene?", drop_question_words=True)
    assert stem("sykkel") in terms


def test_corpus_vocabulary_excludes_stop_words_and_numbers() -> None:
    vocabulary = corpus_vocabulary(["Byrådet vil bygge 1800 boliger og en bro."])
    assert vocabulary == {"byrådet", "bygge", "boliger", "bro"}
