"""Search expansions: loading and validation, the committed set, and what they change in retrieval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.core import Assistant
from assistant.corpus import EXPANSIONS_DIR, Corpus, load_corpus
from assistant.embeddings import HashingEmbedder
from assistant.errors import CorpusError, IndexStaleError
from assistant.index import FORMAT_VERSION, build_index, current_build, load_index
from assistant.relevance import Calibration, TermIndex
from assistant.retrieval import HybridSearcher, mix_views
from assistant.settings import Settings
from tests.conftest import REAL_CORPUS_DIR, FakeSettings

SMALL_DOCUMENT = """\
# Liten plattform

# Helse

## Fastlegeordningen

## Byrådet vil:

- styrke fastlegeordningen.

# Kultur

## Bibliotek

## Byrådet vil:

- utvide åpningstidene i folkebibliotekene.
"""
FASTLEGE_ID = "helse/fastlegeordningen/1"
BIBLIOTEK_ID = "kultur/bibliotek/1"
#: Shares no word with the pledge, only with its expansion.
RESIDENT_QUESTION = "Jeg finner ingen doktor som tar imot nye pasienter"


def _small_corpus(folder: Path, expansions: list[dict[str, Any]] | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "liten.txt").write_text(SMALL_DOCUMENT, encoding="utf-8")
    (folder / "liten.meta.json").write_text(
        json.dumps({"doc_id": "liten", "title": "Liten plattform", "source_file": "liten.txt"}), encoding="utf-8"
    )
    if expansions is not None:
        (folder / EXPANSIONS_DIR).mkdir()
        lines = [json.dumps(e, ensure_ascii=False) for e in expansions]
        (folder / EXPANSIONS_DIR / "liten.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


FASTLEGE_EXPANSION = {
    "id": FASTLEGE_ID,
    "queries": ["Jeg finner ingen doktor som tar imot nye pasienter", "får ikke lege"],
    "terms": ["lege", "doktor", "legemangel"],
}


# --- loading ---------------------------------------------------------------------------------


def test_expansions_are_loaded_by_unit_id(tmp_path: Path) -> None:
    corpus = load_corpus(_small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION]))
    assert set(corpus.expansions) == {FASTLEGE_ID}
    expansion = corpus.expansions[FASTLEGE_ID]
    assert expansion.queries == tuple(FASTLEGE_EXPANSION["queries"])
    assert expansion.terms == ("lege", "doktor", "legemangel")
    assert len(corpus.expansions_sha256) == 64


def test_a_corpus_without_expansions_loads_and_has_no_expansion_digest(tmp_path: Path) -> None:
    corpus = load_corpus(_small_corpus(tmp_path / "c", None))
    assert corpus.expansions == {}
    assert corpus.expansions_sha256 == ""


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "helse/ukjent/9", "queries": [], "terms": []}', "not a unit of the platform"),
        ("{not json", "malformed"),
        ('{"queries": ["x"]}', "malformed"),
        ('{"id": "helse/fastlegeordningen/1", "queries": "lege", "terms": []}', "list of strings"),
        ('["en", "liste"]', "malformed"),
    ],
)
def test_a_bad_expansion_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    folder = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    path = folder / EXPANSIONS_DIR / "liten.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as caught:
        load_corpus(folder)
    assert "liten.jsonl, line 2" in str(caught.value)


def test_a_unit_expanded_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="repeats"):
        load_corpus(_small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION, FASTLEGE_EXPANSION]))


# --- the committed set -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_corpus() -> Corpus:
    return load_corpus(REAL_CORPUS_DIR)


def test_every_unit_of_the_platform_has_expansions(real_corpus: Corpus) -> None:
    missing = [u.id for u in real_corpus.units if u.id not in real_corpus.expansions]
    assert missing == []
    for expansion in real_corpus.expansions.values():
        assert len(expansion.queries) >= 2, expansion.unit_id
        assert len(expansion.terms) >= 3, expansion.unit_id


# That no expansion copies an evaluation question is tests/test_leakage.py's business.


# --- retrieval -------------------------------------------------------------------------------


def test_mix_views_blends_the_best_expansion_into_its_chunk() -> None:
    text = np.array([0.5, 0.4, 0.3])
    views = np.array([0.9, 0.7, 0.8])
    owner = np.array([1, 1, 2])
    mixed = mix_views(text, views, owner, 0.25)
    assert mixed[0] == pytest.approx(0.5)  # no expansions: its own cosine
    assert mixed[1] == pytest.approx(0.75 * 0.4 + 0.25 * 0.9)  # the best of its two
    assert mixed[2] == pytest.approx(0.75 * 0.3 + 0.25 * 0.8)
    assert np.array_equal(mix_views(text, views, owner, 0.0), text)
    assert np.array_equal(mix_views(text, np.array([]), np.array([], dtype=np.int64), 0.3), text)


def test_mix_views_can_average_a_chunks_closest_expansions() -> None:
    text = np.array([0.5, 0.4, 0.3])
    views = np.array([0.2, 0.9, 0.8, 0.7])
    owner = np.array([1, 1, 2, 1])
    mixed = mix_views(text, views, owner, 0.25, closest=2)
    assert mixed[0] == pytest.approx(0.5)
    assert mixed[1] == pytest.approx(0.75 * 0.4 + 0.25 * (0.9 + 0.7) / 2)  # its two best, not the 0.2
    assert mixed[2] == pytest.approx(0.75 * 0.3 + 0.25 * 0.8)  # only one: that one
    assert np.array_equal(mix_views(text, views, owner, 0.25, closest=1), mix_views(text, views, owner, 0.25))
    assert mix_views(text, views, owner, 0.25, closest=10)[1] == pytest.approx(0.75 * 0.4 + 0.25 * 0.6)
    with pytest.raises(ValueError, match="at least 1"):
        mix_views(text, views, owner, 0.25, closest=0)


def test_ranking_averages_expansions_but_answerability_reads_the_closest(
    tmp_path: Path, fake_settings: FakeSettings
) -> None:
    """`fused` (the ranking) takes the mean of the two closest expansion questions; `dense` (which
    the calibrated answerability z-score reads) keeps the closest alone."""
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    index = build_index(fake_settings(corpus_dir=corpus_dir), load_corpus(corpus_dir), HashingEmbedder())
    closest = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.0, expansion_weight=0.3, expansion_views=1)
    averaged = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.0, expansion_weight=0.3, expansion_views=2)
    one, two = closest.score(RESIDENT_QUESTION), averaged.score(RESIDENT_QUESTION)
    position = next(i for i, c in enumerate(index.chunks) if c.unit_id == FASTLEGE_ID)
    assert np.array_equal(one.dense, two.dense)
    assert np.array_equal(one.fused, one.dense)
    # The question equals the first expansion question and not the second: the mean is lower.
    assert two.fused[position] < one.fused[position]


def test_a_passage_ranks_below_a_pledge_of_the_same_score(fake_assistant: Assistant) -> None:
    index = fake_assistant.index
    plain = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.03, expansion_weight=0.3)
    penalised = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.03, expansion_weight=0.3, passage_penalty=0.01)
    question = "Hva vil byrådet gjøre med fastlegeordningen?"
    difference = plain.score(question).fused - penalised.score(question).fused
    passages = np.array([c.kind == "passage" for c in index.chunks])
    assert passages.any() and (~passages).any()
    assert np.allclose(difference[passages], 0.01)
    assert np.allclose(difference[~passages], 0.0)


def _rank_of(settings: FakeSettings, corpus_dir: Path, question: str, unit_id: str, weight: float) -> int:
    settings_ = settings(corpus_dir=corpus_dir, auto_build_index=False)
    corpus = load_corpus(corpus_dir)
    index = build_index(settings_, corpus, HashingEmbedder())
    searcher = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.03, expansion_weight=weight)
    scored = searcher.score(question)
    order = [index.chunks[i].unit_id for i in np.argsort(-scored.fused, kind="stable")]
    return order.index(unit_id)


def test_a_question_in_the_residents_words_finds_the_pledge_through_its_expansion(
    tmp_path: Path, fake_settings: FakeSettings
) -> None:
    with_expansions = _small_corpus(tmp_path / "with", [FASTLEGE_EXPANSION])
    without = _small_corpus(tmp_path / "without", None)
    assert _rank_of(fake_settings, with_expansions, RESIDENT_QUESTION, FASTLEGE_ID, 0.3) == 0
    # The same question without expansions has nothing to go on: the pledge does not lead.
    searcher_settings = fake_settings(corpus_dir=without, index_dir=tmp_path / "index-without")
    index = build_index(searcher_settings, load_corpus(without), HashingEmbedder())
    scored = HybridSearcher(index, HashingEmbedder(), bm25_weight=0.03, expansion_weight=0.3).score(RESIDENT_QUESTION)
    assert scored.best_view == 0.0
    assert float(scored.fused.max()) == 0.0


def test_expansions_are_searched_but_never_quoted(tmp_path: Path, fake_settings: FakeSettings) -> None:
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    assistant = Assistant(fake_settings(corpus_dir=corpus_dir))
    assistant.with_calibration(Calibration(threshold=float("-inf")))
    answer = assistant.ask(RESIDENT_QUESTION)
    assert not answer.refused
    first = answer.citations[0]
    assert first.chunk.unit_id == FASTLEGE_ID
    assert first.text == "styrke fastlegeordningen."
    for query in FASTLEGE_EXPANSION["queries"]:
        assert query not in answer.text
    assert "legemangel" not in answer.text


def test_editing_the_expansions_makes_the_index_stale(tmp_path: Path, fake_settings: FakeSettings) -> None:
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    settings = fake_settings(corpus_dir=corpus_dir, auto_build_index=False)
    build_index(settings, load_corpus(corpus_dir), HashingEmbedder())
    edited = dict(FASTLEGE_EXPANSION, terms=["lege", "doktor", "allmennlege"])
    (corpus_dir / EXPANSIONS_DIR / "liten.jsonl").write_text(json.dumps(edited) + "\n", encoding="utf-8")
    with pytest.raises(IndexStaleError, match="expansions_sha256"):
        load_index(settings, load_corpus(corpus_dir))


def test_an_index_of_an_older_format_is_stale_not_corrupt(tmp_path: Path, fake_settings: FakeSettings) -> None:
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    settings = fake_settings(corpus_dir=corpus_dir, auto_build_index=False)
    build_index(settings, load_corpus(corpus_dir), HashingEmbedder())
    manifest_path = current_build(settings) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = FORMAT_VERSION - 1
    del manifest["expansions_sha256"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexStaleError, match="Rebuild"):
        load_index(settings, load_corpus(corpus_dir))


def test_views_are_embedded_as_questions_and_owned_by_their_chunk(tmp_path: Path, fake_settings: FakeSettings) -> None:
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    settings = fake_settings(corpus_dir=corpus_dir, auto_build_index=False)
    built = build_index(settings, load_corpus(corpus_dir), HashingEmbedder())
    loaded = load_index(settings, load_corpus(corpus_dir))
    owners = {loaded.chunks[int(i)].unit_id for i in loaded.view_owner}
    assert owners == {FASTLEGE_ID}
    assert loaded.views.ntotal == built.views.ntotal == len(FASTLEGE_EXPANSION["queries"])
    rows = json.loads((built.path / "views.json").read_text(encoding="utf-8"))
    assert [r["text"] for r in rows] == FASTLEGE_EXPANSION["queries"]
    fastlege = next(c for c in loaded.chunks if c.unit_id == FASTLEGE_ID)
    assert "legemangel" in fastlege.search_keywords
    assert fastlege.search_questions.startswith("Jeg finner ingen doktor")
    assert next(c for c in loaded.chunks if c.unit_id == BIBLIOTEK_ID).search_terms == ""


# --- calibration is per embedding model --------------------------------------------------------


def test_a_calibration_fitted_for_another_model_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    Calibration(threshold=31.0, answer_view_weight=30.0, embedding_model="some/model").save(path)
    assert Calibration.load(path, embedding_model="some/model").threshold == 31.0
    assert Calibration.load(path, embedding_model="fake/hashing") == Calibration()
    assert Calibration.load(path).threshold == 31.0


def test_a_chunks_expansion_words_count_towards_its_coverage(tmp_path: Path, fake_settings: FakeSettings) -> None:
    """«doktor» is covered by the fastlege pledge through its synonyms, not by the library one."""
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    index = build_index(fake_settings(corpus_dir=corpus_dir), load_corpus(corpus_dir), HashingEmbedder())
    terms = TermIndex(index.chunks, index.decompounder)
    query = terms.query_words("doktor")
    positions = {c.unit_id: i for i, c in enumerate(index.chunks)}
    assert terms.coverage(query, positions[FASTLEGE_ID]) == 1.0
    assert terms.coverage(query, positions[BIBLIOTEK_ID]) == 0.0


def test_the_assistant_ranks_with_its_settings(tmp_path: Path, fake_settings: FakeSettings) -> None:
    corpus_dir = _small_corpus(tmp_path / "c", [FASTLEGE_EXPANSION])
    assistant = Assistant(fake_settings(corpus_dir=corpus_dir, expansion_views=3, passage_rank_penalty=0.2))
    searcher = assistant.retriever().searcher
    assert (searcher.expansion_views, searcher.expansion_weight) == (3, assistant.settings.expansion_weight)
    defaults = Settings.model_fields
    assert (defaults["expansion_views"].default, defaults["passage_rank_penalty"].default) == (2, 0.01)
