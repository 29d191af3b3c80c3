"""Hybrid retrieval: score fusion, ranked hits, the LangChain retriever and LangChain's standard suites."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from assistant.core import Assistant
from assistant.embeddings import HashingEmbedder
from assistant.retrieval import HybridSearcher, PlatformRetriever, Scored, fuse, ranking

FRITIDSKORT = "kultur-idrett-og-friluftsliv/kultur-og-idrettsbyen-trondheim/kulturbyen/13"

# --- fuse (pure) ---------------------------------------------------------------------------


def test_fuse_adds_scaled_bm25() -> None:
    dense = np.array([0.5, 0.2, 0.1])
    bm25 = np.array([0.0, 4.0, 2.0])
    np.testing.assert_allclose(fuse(dense, bm25, 0.1), [0.5, 0.3, 0.15])


def test_fuse_scales_bm25_per_query() -> None:
    dense = np.array([0.5, 0.2])
    assert np.allclose(fuse(dense, np.array([0.0, 1.0]), 0.2), fuse(dense, np.array([0.0, 50.0]), 0.2))


def test_fuse_without_lexical_signal_returns_a_copy_of_dense() -> None:
    dense = np.array([0.3, 0.1])
    fused = fuse(dense, np.zeros(2), 0.5)
    np.testing.assert_array_equal(fused, dense)
    assert fused is not dense
    fused[0] = 9.0
    assert dense[0] == 0.3


def test_fuse_does_not_mutate_its_inputs() -> None:
    dense = np.array([0.3, 0.1])
    bm25 = np.array([1.0, 3.0])
    fuse(dense, bm25, 0.5)
    np.testing.assert_array_equal(dense, [0.3, 0.1])
    np.testing.assert_array_equal(bm25, [1.0, 3.0])


def test_fuse_with_zero_weight_is_dense_and_empty_input_is_empty() -> None:
    np.testing.assert_array_equal(fuse(np.array([0.2, 0.4]), np.array([5.0, 1.0]), 0.0), [0.2, 0.4])
    assert fuse(np.array([]), np.array([]), 0.5).shape == (0,)


def test_ranking_breaks_ties_by_dense_score_then_position() -> None:
    scored = Scored(
        dense=np.array([0.1, 0.3, 0.3, 0.2]),
        bm25=np.zeros(4),
        fused=np.array([0.5, 0.5, 0.5, 0.9]),
    )
    assert list(ranking(scored)) == [3, 1, 2, 0]


# --- hybrid search over the real corpus ----------------------------------------------------


@pytest.fixture(scope="module")
def searcher(fake_assistant: Assistant) -> HybridSearcher:
    return fake_assistant.retriever().searcher


@pytest.mark.parametrize("query", ["fritidskort", "sykkelveinett", "Hva vil byrådet gjøre med eldreomsorgen?"])
def test_search_returns_ranked_hits(searcher: HybridSearcher, query: str) -> None:
    hits = searcher.search(query, 10)
    assert len(hits) == 10
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len({h.chunk.id for h in hits}) == 10
    # The hits are the 10 best fused scores (how they are fused: test_fuse_*, test_expansions).
    scored = searcher.score(query)
    expected = scored.fused
    position = {c.id: i for i, c in enumerate(searcher.index.chunks)}
    for hit in hits:
        assert hit.score == pytest.approx(expected[position[hit.chunk.id]])
        assert hit.dense_score == pytest.approx(scored.dense[position[hit.chunk.id]])
    assert min(scores) >= np.sort(expected)[-10] - 1e-9


def test_search_with_larger_k(searcher: HybridSearcher) -> None:
    hits = searcher.search("skole", 25)
    assert len(hits) == 25
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_assistant_search_defaults_to_retrieve_k(fake_assistant: Assistant) -> None:
    hits = fake_assistant.search("barnehage")
    assert len(hits) == fake_assistant.settings.retrieve_k >= 10


def test_scoring_several_queries_in_one_batch_equals_scoring_each(searcher: HybridSearcher) -> None:
    queries = ["Hva lover byrådet om buss?", "Hva lover byrådet om trikk?", "fastlege"]
    batched = searcher.score_vectors(queries, searcher.embedder.encode_queries(queries))
    for query, scored in zip(queries, batched, strict=True):
        alone = searcher.score(query)
        np.testing.assert_allclose(scored.fused, alone.fused, atol=1e-6)
        np.testing.assert_allclose(scored.dense, alone.dense, atol=1e-6)
    assert searcher.score_vectors([], searcher.embedder.encode_queries([])) == []


def test_a_question_its_known_words_and_its_list_items_are_embedded_in_one_batch(
    fake_assistant: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One model call per question: the unknown-word shift and the list items ride in the same batch."""
    embedder = fake_assistant.embedder
    batches: list[list[str]] = []
    original = embedder.encode_queries

    def counting(texts: Any) -> np.ndarray:
        batches.append(list(texts))
        return original(texts)

    monkeypatch.setattr(embedder, "encode_queries", counting)
    question = "Hva lover byrådet xylofonistene om buss, trikk og tog?"
    retrieved = fake_assistant.retrieve(question)
    assert len(batches) == 1 and batches[0][0] == question and len(batches[0]) == 5
    assert len(retrieved.aspect_tops) == 3 and retrieved.unknown_shift > 0.0
    # The same figures as scoring each text on its own.
    alone = original([question, batches[0][-1]])
    assert retrieved.unknown_shift == pytest.approx(1.0 - float(np.dot(alone[0], alone[1])))


def test_hit_ranks_are_reported(searcher: HybridSearcher) -> None:
    (top,) = searcher.search("fritidskort", 1)
    assert top.chunk.id == FRITIDSKORT
    assert top.bm25_rank == 1
    assert top.dense_rank == 1
    far = searcher.search("fritidskort", len(searcher.index.chunks))[-1]
    assert far.bm25_rank is None  # no lexical match at all


@pytest.mark.parametrize(
    ("query", "unit_id"),
    [
        pytest.param("fritidskort", FRITIDSKORT, id="fritidskort"),
        pytest.param(
            "Heggstadmoen", "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/samferdsel/1", id="Heggstadmoen"
        ),
        pytest.param(
            "Trønderbanen", "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/samferdsel/13", id="Trønderbanen"
        ),
        pytest.param(
            "karbonfangst", "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/klima-og-energi/3", id="karbonfangst"
        ),
        pytest.param(
            "ishall",
            "kultur-idrett-og-friluftsliv/kultur-og-idrettsbyen-trondheim/idrett-og-friluftsliv/3",
            id="ishall",
        ),
        pytest.param(
            "Brundalsforbindelsen",
            "miljo-naering-og-samferdsel/baerekraftig-verdiskaping/samferdsel/14",
            id="Brundalsforbindelsen",
        ),
        pytest.param(
            "markalov",
            "byutvikling/en-inkluderende-vekstkraftig-og-gronn-by/natur-og-klimatilpasning/4",
            id="markalov",
        ),
        pytest.param(
            "Munkegata",
            "byutvikling/en-inkluderende-vekstkraftig-og-gronn-by/en-inkluderende-og-attraktiv-by/2",
            id="Munkegata",
        ),
    ],
)
def test_exact_keyword_ranks_its_pledge_first(searcher: HybridSearcher, query: str, unit_id: str) -> None:
    pledge_text = next(c.text for c in searcher.index.chunks if c.id == unit_id)
    assert query.lower() in pledge_text.lower()  # the keyword really is in the expected pledge
    hits = searcher.search(query, 10)
    assert hits[0].chunk.unit_id == unit_id


def test_bm25_finds_compound_parts(searcher: HybridSearcher) -> None:
    """'sykkel' reaches 'sykkelparkeringsplasser' through the decompounder."""
    scored = searcher.score("sykkel")
    parking = next(i for i, c in enumerate(searcher.index.chunks) if "sykkelparkeringsplasser" in c.text)
    assert scored.bm25[parking] > 0


# --- PlatformRetriever ---------------------------------------------------------------------


def test_platform_retriever_returns_documents_with_metadata(fake_assistant: Assistant) -> None:
    docs = fake_assistant.retriever().invoke("fritidskort")
    assert len(docs) == 10
    assert all(isinstance(d, LCDocument) for d in docs)
    first = docs[0]
    assert first.id == FRITIDSKORT
    assert first.page_content == fake_assistant.corpus.unit(FRITIDSKORT).text
    assert first.metadata["id"] == first.metadata["unit_id"] == FRITIDSKORT
    assert first.metadata["kind"] == "pledge"
    assert first.metadata["chapter"] == "Kultur, idrett og friluftsliv"
    assert first.metadata["section"] == "Kultur- og idrettsbyen Trondheim"
    assert first.metadata["subheading"] == "Kulturbyen"
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert first.metadata["bm25_score"] > 0
    assert isinstance(first.metadata["dense_score"], float)


def test_platform_retriever_constructor_k(fake_assistant: Assistant) -> None:
    assert len(fake_assistant.retriever(k=3).invoke("skole")) == 3
    assert len(fake_assistant.retriever(k=20).invoke("skole")) == 20


# --- LangChain standard suites -------------------------------------------------------------


@pytest.mark.anyio
class TestPlatformRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's retriever conformance suite, wired to a searcher over the real corpus."""

    searcher: HybridSearcher

    @pytest.fixture(autouse=True)
    def _wire_searcher(self, fake_assistant: Assistant) -> None:
        self.searcher = fake_assistant.retriever().searcher

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return PlatformRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"searcher": self.searcher, "k": 10}

    @property
    def retriever_query_example(self) -> str:
        return "Hva vil byrådet gjøre med fritidskortet?"


class TestHashingEmbedderStandardUnit(EmbeddingsUnitTests):
    """LangChain's embeddings unit suite (construction)."""

    standard_tests_skipped: ClassVar[dict[str, str]] = {
        "test_init_from_env": "HashingEmbedder takes no configuration from environment variables.",
    }

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return HashingEmbedder

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"dimension": 256}


@pytest.mark.anyio
class TestHashingEmbedderStandard(EmbeddingsIntegrationTests):
    """LangChain's embeddings suite (embed_query/embed_documents, sync and async). The hashing
    embedder needs no network or model, so the 'integration' suite runs as a unit test."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return HashingEmbedder

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"dimension": 256}


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    embedder = HashingEmbedder()
    a = np.array(embedder.embed_query("bygge flere sykkelveier"))
    b = np.array(HashingEmbedder().embed_query("bygge flere sykkelveier"))
    np.testing.assert_array_equal(a, b)
    docs = np.array(embedder.embed_documents(["sykkelveier i byen", "barnehager og skoler"]))
    assert docs.shape == (2, embedder.dimension)
    assert float(a @ docs[0]) > float(a @ docs[1])
    assert embedder.encode_passages([]).shape == (0, embedder.dimension)
