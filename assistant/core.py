"""The composition root: settings in, a ready assistant out (corpus, embedder, index, chain).

Heavy things (the embedding model, the index) load on first use and once per process; the
assistant is safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable, RunnableLambda

from assistant.answering import Selection, clean_question, compose, select
from assistant.corpus import Corpus, load_corpus
from assistant.embeddings import VectorEmbedder, make_embedder
from assistant.errors import ConfigError, IndexCorruptError, IndexMissingError, IndexStaleError
from assistant.index import SearchIndex, build_index, load_index
from assistant.relevance import Calibration, TermIndex
from assistant.retrieval import HybridSearcher, PlatformRetriever, Scored, ranking
from assistant.settings import Settings
from assistant.types import Answer, Hit

Progress = Callable[[str], None]
BACKENDS = ("extractive",)


@dataclass(frozen=True)
class Retrieved:
    question: str
    scored: Scored
    ranked: np.ndarray
    hits: tuple[Hit, ...]
    retrieve_ms: float


class Assistant:
    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        if settings.backend not in BACKENDS:
            raise ConfigError(f"Unknown backend '{settings.backend}'. Valid backends: {', '.join(BACKENDS)}.")
        self.settings = settings
        self._progress = progress
        self._lock = threading.Lock()
        self._corpus: Corpus | None = None
        self._embedder: VectorEmbedder | None = None
        self._index: SearchIndex | None = None
        self._searcher: HybridSearcher | None = None
        self._terms: TermIndex | None = None
        self._texts: dict[str, str] | None = None
        self._calibration = Calibration.load()
        if settings.refusal_threshold is not None:
            self._calibration = replace(self._calibration, threshold=settings.refusal_threshold)
        self.chain: Runnable[dict[str, Any], Answer] = (
            RunnableLambda(self._validate) | RunnableLambda(self.retrieve) | RunnableLambda(self._answer)
        )

    # --- lazily loaded resources -------------------------------------------------------------

    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = load_corpus(self.settings.corpus_dir)
        return self._corpus

    @property
    def embedder(self) -> VectorEmbedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings, self._progress)
        return self._embedder

    @property
    def calibration(self) -> Calibration:
        return self._calibration

    def with_calibration(self, calibration: Calibration) -> None:
        self._calibration = calibration

    def build_index(self) -> SearchIndex:
        with self._lock:
            index = build_index(self.settings, self.corpus, self.embedder, self._progress)
            self._install(index)
            return index

    def _install(self, index: SearchIndex) -> None:
        self._index = index
        self._searcher = HybridSearcher(index, self.embedder, bm25_weight=self.settings.bm25_weight)
        self._terms = TermIndex(index.chunks, index.decompounder)

    def _ensure_index(self) -> tuple[HybridSearcher, TermIndex]:
        with self._lock:
            if self._searcher is None:
                try:
                    self._install(load_index(self.settings, self.corpus))
                except (IndexMissingError, IndexStaleError, IndexCorruptError) as problem:
                    if not self.settings.auto_build_index:
                        raise
                    if self._progress:
                        self._progress(f"{problem} Building the index now …")
                    self._install(build_index(self.settings, self.corpus, self.embedder, self._progress))
            assert self._searcher is not None and self._terms is not None
            return self._searcher, self._terms

    @property
    def index(self) -> SearchIndex:
        searcher, _ = self._ensure_index()
        return searcher.index

    def warm_up(self) -> None:
        """Load the index and model now, so the first question is fast."""
        searcher, _ = self._ensure_index()
        searcher.embedder.encode_query("oppvarming")

    def retriever(self, k: int | None = None) -> PlatformRetriever:
        searcher, _ = self._ensure_index()
        return PlatformRetriever(searcher=searcher, k=k or self.settings.retrieve_k)

    # --- the chain ---------------------------------------------------------------------------

    def _validate(self, inputs: dict[str, Any]) -> str:
        return clean_question(str(inputs.get("question", "")), self.settings.max_question_chars)

    def retrieve(self, question: str) -> Retrieved:
        searcher, _ = self._ensure_index()
        started = time.perf_counter()
        scored = searcher.score(question)
        hits = searcher.hits(scored, self.settings.retrieve_k)
        ranked = ranking(scored)[: self.settings.retrieve_k]
        return Retrieved(question, scored, ranked, tuple(hits), (time.perf_counter() - started) * 1000)

    def select(self, retrieved: Retrieved) -> Selection:
        searcher, terms = self._ensure_index()
        return select(
            retrieved.question,
            retrieved.scored,
            [int(i) for i in retrieved.ranked],
            searcher.index.chunks,
            terms,
            self._calibration,
        )

    def _unit_texts(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = {u.id: u.text for u in self.corpus.units}
        return self._texts

    def _answer(self, retrieved: Retrieved) -> Answer:
        started = time.perf_counter()
        selection = self.select(retrieved)
        text, citations = compose(selection, self._unit_texts())
        answer_ms = (time.perf_counter() - started) * 1000
        return Answer(
            question=retrieved.question,
            text=text,
            refused=selection.refused,
            citations=citations,
            retrieved=retrieved.hits,
            backend="extractive",
            timings_ms={"retrieve": round(retrieved.retrieve_ms, 2), "answer": round(answer_ms, 2)},
            related=selection.related,
        )

    def ask(self, question: str) -> Answer:
        started = time.perf_counter()
        answer = self.chain.invoke({"question": question})
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        question = clean_question(query, self.settings.max_question_chars)
        searcher, _ = self._ensure_index()
        return searcher.search(question, k or self.settings.retrieve_k)
