"""Chat-model backends behind one factory: settings in, a LangChain chat model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import openai

from assistant.errors import ConfigError
from assistant.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

BACKENDS = ("extractive", "openai", "local")
GENERATIVE_BACKENDS = ("openai", "local")

#: What a model call can fail with: the endpoint is down, slow, rate-limited or answers garbage.
#: These end in the extractive fallback with the reason logged, never in a traceback.
LLM_ERRORS: tuple[type[BaseException], ...] = (
    openai.OpenAIError,
    httpx.HTTPError,
    TimeoutError,
    ConnectionError,
    OSError,
    ValueError,
    RuntimeError,
)


def check_backend(settings: Settings) -> None:
    """Fail early, with the valid choices, on an unknown backend or a missing setting."""
    if settings.backend == "llamacpp":
        raise ConfigError(
            "The llamacpp backend (llama-cpp-python, compiled from source) was replaced by `local`, which runs "
            "a prebuilt llama.cpp: set ASSISTANT_BACKEND=local and ASSISTANT_LOCAL_MODEL to an installed model "
            "(`python -m assistant models list`) or a .gguf path. See docs/local-llm.md."
        )
    if settings.backend not in BACKENDS:
        raise ConfigError(f"Unknown backend '{settings.backend}'. Valid backends: {', '.join(BACKENDS)}.")
    if settings.backend == "openai":
        missing = [
            name
            for name, value in (
                ("ASSISTANT_OPENAI_BASE_URL", settings.openai_base_url),
                ("ASSISTANT_OPENAI_MODEL", settings.openai_model),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"The openai backend needs {' and '.join(missing)} (e.g. ASSISTANT_OPENAI_BASE_URL="
                "http://localhost:11434/v1 and ASSISTANT_OPENAI_MODEL=gemma2:9b for Ollama); "
                "ASSISTANT_OPENAI_API_KEY is needed only where the endpoint asks for one."
            )
    if settings.backend == "local":
        from assistant.local_models import resolve_local_model

        resolve_local_model(settings.local_model, settings.models_dir)  # raises, saying how to install it


def _chat_openai(
    settings: Settings, *, model: str, base_url: str, api_key: str, max_tokens: int, retries: int
) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key,  # type: ignore[arg-type]
        timeout=settings.llm_timeout_s,
        max_retries=retries,
        temperature=settings.llm_temperature,
        max_completion_tokens=max_tokens,
        streaming=True,
    )


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The composition root for generation. Only called for the generative backends."""
    check_backend(settings)
    if settings.backend == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        return _chat_openai(
            settings,
            model=settings.openai_model or "",
            base_url=settings.openai_base_url or "",
            api_key=key,
            max_tokens=settings.llm_max_tokens,
            retries=settings.llm_max_retries,
        )
    if settings.backend == "local":
        from assistant.local_server import shared_server

        server = shared_server(settings)  # loads the model on the process's first call
        return _chat_openai(
            settings,
            model=server.model_name,
            base_url=server.base_url,
            api_key=server.api_key,
            max_tokens=settings.local_max_tokens,
            # A retry cannot help a model on this machine (no rate limit, no flaky network); after
            # a timeout it would only double the wait before the fallback.
            retries=0,
        )
    raise ConfigError(f"The backend '{settings.backend}' does not use a language model.")
