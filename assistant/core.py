"""The composition root: settings in, a ready assistant out (corpus, embedder, index, chain).

Heavy things (the embedding model, the index) load on first use and once per process; the
assistant is safe to share between threads.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from assistant.answering import Selection, clean_question, select
from assistant.composing import compose
from assistant.corpus import Corpus, load_corpus
from assistant.embeddings import VectorEmbedder, make_embedder
from assistant.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from assistant.generation import (
    CONDENSE_PROMPT,
    FALLBACK_ECHO,
    FALLBACK_MODEL_FAILED,
    FALLBACK_NO_CITATIONS,
    Generated,
    answer_prompt,
    check_generated,
    format_history,
    format_sources,
    heuristic_standalone,
)
from assistant.index import SearchIndex, build_index, load_index
from assistant.llms import GENERATIVE_BACKENDS, LLM_ERRORS, check_backend, make_chat_model
from assistant.relevance import Calibration, TermIndex, aspect_questions
from assistant.retrieval import HybridSearcher, PlatformRetriever, Scored, ranking
from assistant.scope import Catalogue, is_small_talk, resolve_scope
from assistant.settings import Settings
from assistant.text import looks_english
from assistant.types import Answer, AnswerScope, Chunk, Citation, Hit

Progress = Callable[[str], None]
History = Sequence[tuple[str, str]]
logger = logging.getLogger("assistant")


@dataclass(frozen=True)
class Retrieved:
    question: str
    scored: Scored
    ranked: np.ndarray
    hits: tuple[Hit, ...]
    retrieve_ms: float
    #: How far the question's embedding moves (1 - cosine) when the words the platform never uses
    #: are left out: how much the question rests on them (0 when it has none, or is English).
    unknown_shift: float = 0.0
    #: For a question that lists what it asks about («buss, trikk og tog»): the best-ranked chunk
    #: for each item (see `aspect_questions`).
    aspect_tops: tuple[int, ...] = ()


@dataclass(frozen=True)
class Prepared:
    text: str  # the question as asked (cleaned)
    standalone: str  # what is searched: a follow-up rewritten with the conversation


def _reason(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """A short, loggable reason for a failed model call, with configured secrets masked (an
    endpoint may echo the key in its error)."""
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "***")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


#: Backends whose cited sentences must also share their words with the source they cite: small
#: local models copy their sources, so a sentence that shares few words with its source is a
#: misattributed pledge or an invented claim. A large model paraphrases, and the same test would
#: drop good sentences; it is not applied there (unmeasured).
SUPPORT_CHECKED_BACKENDS = ("local",)


def _guard_counts(generated: Generated) -> dict[str, Any]:
    """What the citation guard (and the support check) removed or changed, for the Answer."""
    support = generated.support
    return {
        "removed_citations": generated.guard.removed,
        "uncited_sentences": generated.guard.uncited_sentences,
        "dropped_sentences": generated.guard.dropped_sentences,
        "unsupported_sentences": support.unsupported if support is not None else (),
        "repointed_citations": support.repointed if support is not None else 0,
    }


class Assistant:
    def __init__(
        self, settings: Settings, progress: Progress | None = None, chat_model: BaseChatModel | None = None
    ) -> None:
        if chat_model is None:
            check_backend(settings)
        self.settings = settings
        self._progress = progress
        self._lock = threading.Lock()
        self._corpus: Corpus | None = None
        self._embedder: VectorEmbedder | None = None
        self._searcher: HybridSearcher | None = None
        self._terms: TermIndex | None = None
        self._catalogue: Catalogue | None = None
        self._texts: dict[str, str] | None = None
        self._calibration = Calibration.load(embedding_model=settings.embedding_model)
        if settings.refusal_threshold is not None:
            self._calibration = replace(self._calibration, threshold=settings.refusal_threshold)
        # A chat model can be injected (tests, notebooks); otherwise the settings choose one.
        self._chat_model: BaseChatModel | None = chat_model
        #: Called with every finished answer and its question id (the evaluation reads the guard's
        #: counts from them).
        self.answer_listeners: list[Callable[[str, Answer], None]] = []
        # The LCEL chain: validate -> condense a follow-up -> hybrid retrieval; then either the
        # extractive composer (self.chain) or the model with the citation guard (self._generate).
        self.prepare: Runnable[dict[str, Any], tuple[Prepared, Retrieved]] = RunnableLambda(
            self._validate
        ) | RunnableLambda(lambda q: (q, self.retrieve(q.standalone)))
        self.chain: Runnable[dict[str, Any], Answer] = self.prepare | RunnableLambda(self._answer)

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
        self._searcher = HybridSearcher(
            index,
            self.embedder,
            bm25_weight=self.settings.bm25_weight,
            expansion_weight=self.settings.expansion_weight,
            expansion_views=self.settings.expansion_views,
            passage_penalty=self.settings.passage_rank_penalty,
        )
        self._terms = TermIndex(index.chunks, index.decompounder)
        vectors = index.dense.reconstruct_n(0, index.dense.ntotal) if index.dense.ntotal else None
        self._catalogue = Catalogue(self.corpus, index.chunks, vectors)

    def _load_checked(self) -> SearchIndex:
        """The index on disk, checked against the corpus, the model and its own checksums."""
        index = load_index(self.settings, self.corpus)
        if self.embedder.dimension != index.manifest.dimension:
            raise IndexStaleError(
                f"The index holds {index.manifest.dimension}-dimensional vectors, the model makes "
                f"{self.embedder.dimension}. Rebuild it with `python -m assistant index`."
            )
        return index

    @property
    def catalogue(self) -> Catalogue:
        """The document's headings, chapters and themes, as topics a question may be about."""
        self._ensure_index()
        assert self._catalogue is not None
        return self._catalogue

    def _ensure_index(self) -> tuple[HybridSearcher, TermIndex]:
        with self._lock:
            if self._searcher is None:
                try:
                    self._install(self._load_checked())
                except (IndexMissingError, IndexStaleError, IndexCorruptError) as problem:
                    if not self.settings.auto_build_index:
                        raise
                    if self._progress:
                        self._progress(f"{problem} Building the index now …")
                    self._install(build_index(self.settings, self.corpus, self.embedder, self._progress))
            assert self._searcher is not None and self._terms is not None
            return self._searcher, self._terms

    def derive(self, *, backend: str, chat_model: BaseChatModel | None = None) -> Assistant:
        """Another assistant with another backend on this one's loaded corpus, model and index."""
        other = Assistant(self.settings.model_copy(update={"backend": backend}), self._progress, chat_model)
        other._corpus = self.corpus
        other._embedder = self.embedder
        other._install(self.index)
        return other

    @property
    def index(self) -> SearchIndex:
        searcher, _ = self._ensure_index()
        return searcher.index

    def warm_up(self) -> None:
        """Load the index, the model and the word list now, so the first question is fast."""
        searcher, terms = self._ensure_index()
        searcher.embedder.encode_query("oppvarming")
        terms.query_words("oppvarming")
        if self.generative:
            # The local backend loads its language model here (seconds, and errors show at start).
            self.chat_model()

    def retriever(self, k: int | None = None) -> PlatformRetriever:
        searcher, _ = self._ensure_index()
        return PlatformRetriever(searcher=searcher, k=k or self.settings.retrieve_k)

    # --- the chain ---------------------------------------------------------------------------

    def _validate(self, inputs: dict[str, Any]) -> Prepared:
        question = clean_question(str(inputs.get("question", "")), self.settings.max_question_chars)
        return Prepared(question, self._condense(question, inputs.get("history") or ()))

    def retrieve(self, question: str) -> Retrieved:
        searcher, terms = self._ensure_index()
        started = time.perf_counter()
        # The question, its text without the words the platform never uses, and each item of a
        # list it names are embedded in one batch: one model call instead of up to eight.
        reduced = self._without_unknown_words(question, terms)
        embed_reduced = [reduced] if reduced is not None and any(ch.isalnum() for ch in reduced) else []
        aspects = aspect_questions(question)
        vectors = self.embedder.encode_queries([question, *aspects, *embed_reduced])
        scored, *per_aspect = searcher.score_vectors([question, *aspects], vectors[: 1 + len(aspects)])
        hits = searcher.hits(scored, self.settings.retrieve_k)
        ranked = ranking(scored)[: self.settings.retrieve_k]
        if reduced is None:
            shift = 0.0
        elif embed_reduced:
            shift = 1.0 - float(np.dot(vectors[0], vectors[-1]))
        else:
            shift = 1.0  # nothing the platform uses is left
        aspect_tops = tuple(int(ranking(each)[0]) for each in per_aspect)
        elapsed = (time.perf_counter() - started) * 1000
        return Retrieved(question, scored, ranked, tuple(hits), elapsed, shift, aspect_tops)

    @staticmethod
    def _without_unknown_words(question: str, terms: TermIndex) -> str | None:
        """The question without the words the platform never uses, or None when it has none (or is
        English: all its words are unknown to a Norwegian platform, so leaving them out says nothing)."""
        if looks_english(question):
            return None
        return terms.without_unknown_words(question)

    def select(self, retrieved: Retrieved) -> Selection:
        searcher, terms = self._ensure_index()
        ranked = [int(i) for i in retrieved.ranked]
        chunks = searcher.index.chunks
        scope = resolve_scope(retrieved.question, ranked, chunks, terms, self.catalogue)
        return select(
            retrieved.question,
            retrieved.scored,
            ranked,
            chunks,
            terms,
            self._calibration,
            self.catalogue,
            scope,
            unknown_shift=retrieved.unknown_shift,
            aspect_tops=retrieved.aspect_tops,
        )

    def _unit_texts(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = {u.id: u.text for u in self.corpus.citable}
        return self._texts

    def _answer(self, prepared: tuple[Prepared, Retrieved]) -> Answer:
        question, retrieved = prepared
        started = time.perf_counter()
        selection = self.select(retrieved)
        text, citations = compose(selection, self._unit_texts(), self.catalogue)
        answer_ms = (time.perf_counter() - started) * 1000
        return Answer(
            question=question.text,
            text=text,
            refused=selection.refused,
            citations=citations,
            retrieved=retrieved.hits,
            backend="extractive",
            timings_ms={"retrieve": round(retrieved.retrieve_ms, 2), "answer": round(answer_ms, 2)},
            related=selection.related,
            standalone_question=question.standalone,
            decision=selection.mode,
            refusal_reason=selection.reason or None,
            scope=AnswerScope(selection.scope.kind, selection.scope.name),
        )

    # --- generation ----------------------------------------------------------------------------

    @property
    def generative(self) -> bool:
        return self.settings.backend in GENERATIVE_BACKENDS

    def chat_model(self) -> BaseChatModel:
        with self._lock:
            if self._chat_model is None:
                self._chat_model = make_chat_model(self.settings)
            return self._chat_model

    def _secrets(self) -> list[str]:
        key = self.settings.openai_api_key
        return [key.get_secret_value()] if key is not None else []

    def _condense(self, question: str, history: History) -> str:
        """A follow-up becomes a standalone question: by the model where there is one. Small talk
        («hei», «takk») is never a follow-up: glued to the last question it would be answered as that."""
        if not history or is_small_talk(question):
            return question
        if not self.generative:
            return heuristic_standalone(question, history)
        try:
            rewritten = (CONDENSE_PROMPT | self.chat_model() | StrOutputParser()).invoke(
                {"history": format_history(history), "question": question}
            )
        except LLM_ERRORS as exc:
            logger.warning("condense failed, using the follow-up heuristic: %s", _reason(exc, self._secrets()))
            return heuristic_standalone(question, history)
        rewritten = rewritten.strip().strip('«»"').strip()
        return rewritten if 0 < len(rewritten) <= self.settings.max_question_chars else question

    def _sources(self, retrieved: Retrieved, selection: Selection) -> list[Chunk]:
        if selection.scope.kind not in ("unit", "none", "chat"):
            return list(selection.cited)
        sources: dict[str, Chunk] = {}
        for hit in retrieved.hits:
            sources.setdefault(hit.chunk.unit_id, hit.chunk)
        ranked = list(sources.values())
        # What the extractive answer would cite (a listed item's best pledge, say) reaches the model
        # even when it ranks below the hits that fit.
        missing = [c for c in selection.cited if c.unit_id not in sources][: self.settings.llm_max_sources]
        return ranked[: self.settings.llm_max_sources - len(missing)] + missing

    def _fallback(
        self,
        prepared: tuple[Prepared, Retrieved],
        note: str,
        model_ms: float,
        first_token_ms: float | None = None,
        generated: Generated | None = None,
    ) -> Answer:
        answer = self._answer(prepared)
        answer.timings_ms["model"] = round(model_ms, 2)
        if first_token_ms is not None:
            answer.timings_ms["first_token"] = round(first_token_ms, 2)
        # What the guard took out of the replaced answer is still counted (evaluation, logs).
        return replace(answer, note=note, **(_guard_counts(generated) if generated is not None else {}))

    def _generate(self, prepared: tuple[Prepared, Retrieved]) -> Iterator[str | Answer]:
        question, retrieved = prepared
        selection = self.select(retrieved)
        if selection.scope.kind in ("none", "chat"):
            # Small talk and what the platform cannot answer (another municipality, a request to
            # make something up) need no model: the fixed welcome or refusal is the answer.
            yield self._answer(prepared)
            return
        sources = self._sources(retrieved, selection)
        started = time.perf_counter()
        first_token_ms: float | None = None
        pieces: list[str] = []
        try:
            chain = answer_prompt(self.settings.backend) | self.chat_model() | StrOutputParser()
            for token in chain.stream({"sources": format_sources(sources), "question": question.text}):
                if first_token_ms is None and token:
                    first_token_ms = (time.perf_counter() - started) * 1000
                pieces.append(token)
                yield token
        except LLM_ERRORS as exc:
            reason = _reason(exc, self._secrets())
            logger.warning("model call failed, extractive fallback: %s", reason)
            yield self._fallback(
                prepared,
                FALLBACK_MODEL_FAILED.format(reason=reason),
                (time.perf_counter() - started) * 1000,
                first_token_ms,
            )
            return
        model_ms = (time.perf_counter() - started) * 1000
        generated = check_generated(
            "".join(pieces), sources, require_support=self.settings.backend in SUPPORT_CHECKED_BACKENDS
        )
        if generated.guard.removed:
            logger.warning(
                "removed %d citation(s) outside the %d sources; dropped %d sentence(s)",
                generated.guard.removed,
                len(sources),
                len(generated.guard.dropped_sentences),
            )
        if generated.support is not None and (generated.support.repointed or generated.support.unsupported):
            logger.warning(
                "support check: %d sentence(s) re-pointed to the source that says them, %d unsupported removed",
                generated.support.repointed,
                len(generated.support.unsupported),
            )
        if generated.echoed_instructions:
            logger.warning("generated answer repeated the system prompt, extractive fallback")
            yield self._fallback(prepared, FALLBACK_ECHO, model_ms, first_token_ms, generated)
            return
        if not generated.refused and not generated.cited:
            logger.warning("generated answer had no valid citation, extractive fallback")
            yield self._fallback(prepared, FALLBACK_NO_CITATIONS, model_ms, first_token_ms, generated)
            return
        texts = self._unit_texts()
        timings = {"retrieve": round(retrieved.retrieve_ms, 2), "model": round(model_ms, 2)}
        if first_token_ms is not None:
            timings["first_token"] = round(first_token_ms, 2)
        yield Answer(
            question=question.text,
            text=generated.text,
            refused=generated.refused,
            citations=tuple(
                Citation(n, chunk, texts.get(chunk.unit_id, chunk.text))
                for n, chunk in enumerate(generated.cited, start=1)
            ),
            retrieved=retrieved.hits,
            backend=self.settings.backend,
            timings_ms=timings,
            related=tuple(sources[:3]) if generated.refused else (),
            standalone_question=question.standalone,
            **_guard_counts(generated),
            decision="refused" if generated.refused else "generated",
            refusal_reason="the model found no answer in the sources" if generated.refused else None,
            scope=AnswerScope(selection.scope.kind, selection.scope.name),
        )

    # --- entry points ----------------------------------------------------------------------------

    def stream(self, question: str, history: History = (), *, question_id: str | None = None) -> Iterator[str | Answer]:
        """Text pieces as the model writes them (generative backends), then the checked Answer."""
        started = time.perf_counter()
        question_id = question_id or uuid.uuid4().hex[:12]
        prepared = self.prepare.invoke({"question": question, "history": list(history)})
        events: Iterable[str | Answer] = self._generate(prepared) if self.generative else [self._answer(prepared)]
        for event in events:
            if isinstance(event, Answer):
                event.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
                self._log_answer(question_id, event)
                for listener in self.answer_listeners:
                    listener(question_id, event)
            yield event

    def ask(self, question: str, history: History = (), *, question_id: str | None = None) -> Answer:
        answers = [e for e in self.stream(question, history, question_id=question_id) if isinstance(e, Answer)]
        return answers[-1]

    def _log_answer(self, question_id: str, answer: Answer) -> None:
        fields: dict[str, Any] = {
            "question_id": question_id,
            "backend": answer.backend,
            "decision": answer.decision,
            "refused": answer.refused,
            "refusal_reason": answer.refusal_reason,
            "citations": [c.chunk.unit_id for c in answer.citations],
            "timings_ms": answer.timings_ms,
            "fallback": answer.note,
            "removed_citations": answer.removed_citations,
        }
        if self.settings.log_questions:
            fields["question"] = answer.question
        logger.info("answered", extra=fields)

    def search_themes(self, query: str, k: int = 3) -> list[tuple[str, float]]:
        """The themes of the theme index nearest a query (ids and cosines), best first."""
        searcher, _ = self._ensure_index()
        index = searcher.index
        if index.themes is None or not index.theme_ids:
            return []
        vector = np.ascontiguousarray(
            self.embedder.encode_query(clean_question(query, self.settings.max_question_chars))
        )
        scores, rows = index.themes.search(vector.reshape(1, -1).astype(np.float32), min(k, len(index.theme_ids)))
        return [(index.theme_ids[r], float(s)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        question = clean_question(query, self.settings.max_question_chars)
        searcher, _ = self._ensure_index()
        return searcher.search(question, k or self.settings.retrieve_k)
