"""The theme index (`corpus/themes/`): loaded and validated like the search expansions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.corpus import load_corpus
from assistant.errors import CorpusError
from tests.conftest import REAL_CORPUS_DIR

PLEDGE = "helse-og-eldre/fastlegeordningen/1"
STATEMENT = "helse-og-eldre/fastlegeordningen/p1/s4"


def _theme(**overrides: object) -> dict[str, object]:
    theme: dict[str, object] = {
        "id": "fastlege",
        "name": "Fastlege",
        "description": "Fastlegeordningen.",
        "names": ["fastlege", "GP"],
        "headings": ["Helse og eldre › Fastlegeordningen"],
        "units": [STATEMENT, PLEDGE],
    }
    theme.update(overrides)
    return theme


def _corpus_with(tmp_path: Path, *lines: str) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(REAL_CORPUS_DIR, corpus)
    (corpus / "themes" / "leangen-erklaeringen.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus


def test_the_real_theme_index_loads() -> None:
    corpus = load_corpus(REAL_CORPUS_DIR)
    assert 60 <= len(corpus.themes) <= 80
    citable = {u.id for u in corpus.citable}
    assert all(t.units and set(t.units) <= citable for t in corpus.themes)
    assert len(corpus.themes_sha256) == 64
    # Every pledge belongs to at least one theme.
    covered = {u for t in corpus.themes for u in t.units}
    assert [p.id for p in corpus.pledges if p.id not in covered] == []


def test_a_valid_theme_with_a_commitment_sentence_loads(tmp_path: Path) -> None:
    corpus = load_corpus(_corpus_with(tmp_path, json.dumps(_theme(), ensure_ascii=False)))
    assert [t.units for t in corpus.themes] == [(STATEMENT, PLEDGE)]


@pytest.mark.parametrize(
    ("theme", "message"),
    [
        (_theme(units=["helse-og-eldre/fastlegeordningen/99"]), "is not a unit of the platform"),
        (_theme(units=[]), "is empty"),
        (_theme(names=[]), "needs a name"),
        (_theme(units=[PLEDGE, PLEDGE]), "twice in 'units'"),
        (_theme(names=["fastlege", "Fastlege"]), "twice in 'names'"),
        (_theme(headings=["Helse og eldre › Tannhelse"]), "the heading 'Helse og eldre › Tannhelse'"),
        (_theme(id="Fast lege"), "is not a lower-case slug"),
        (_theme(units="helse-og-eldre/fastlegeordningen/1"), "must be a list of strings"),
    ],
    ids=[
        "unknown-unit",
        "empty",
        "no-names",
        "repeated-unit",
        "repeated-name",
        "unknown-heading",
        "bad-id",
        "not-a-list",
    ],
)
def test_a_bad_theme_is_a_clear_error_naming_file_and_line(
    tmp_path: Path, theme: dict[str, object], message: str
) -> None:
    first = json.dumps(_theme(id="annet"), ensure_ascii=False)
    corpus = _corpus_with(tmp_path, first, "", json.dumps(theme, ensure_ascii=False))
    with pytest.raises(CorpusError, match=message) as error:
        load_corpus(corpus)
    assert "leangen-erklaeringen.jsonl, line 3" in str(error.value)


def test_a_repeated_theme_id_is_an_error(tmp_path: Path) -> None:
    line = json.dumps(_theme(), ensure_ascii=False)
    with pytest.raises(CorpusError, match="line 2 repeats the theme id 'fastlege'"):
        load_corpus(_corpus_with(tmp_path, line, line))


def test_malformed_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="line 1 is malformed"):
        load_corpus(_corpus_with(tmp_path, "{not json"))


def test_editing_the_theme_index_changes_the_corpus_identity(tmp_path: Path) -> None:
    one = load_corpus(_corpus_with(tmp_path / "a", json.dumps(_theme(), ensure_ascii=False)))
    two = load_corpus(_corpus_with(tmp_path / "b", json.dumps(_theme(names=["fastlege"]), ensure_ascii=False)))
    assert one.themes_sha256 != two.themes_sha256
