"""Chat-model backends behind one factory: settings in, a LangChain chat model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import openai

from assistant.errors import ConfigError
from assistant.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

BACKENDS = ("extractive", "openai", "llamacpp")
GENERATIVE_BACKENDS = ("openai", "llamacpp")

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
    if settings.backend == "llamacpp":
        path = settings.llamacpp_model_path
        if path is None or not path.is_file():
            raise ConfigError(
                "The llamacpp backend needs ASSISTANT_LLAMACPP_MODEL_PATH set to an existing .gguf file"
                + (f" ({path} does not exist)." if path else ".")
            )


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The composition root for generation. Only called for the generative backends."""
    check_backend(settings)
    if settings.backend == "openai":
        from langchain_openai import ChatOpenAI

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        return ChatOpenAI(
            model=settings.openai_model or "",
            base_url=settings.openai_base_url,
            api_key=key,  # type: ignore[arg-type]
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            temperature=settings.llm_temperature,
            max_completion_tokens=settings.llm_max_tokens,
            streaming=True,
        )
    if settings.backend == "llamacpp":
        try:
            from langchain_community.chat_models import ChatLlamaCpp
        except ImportError as exc:
            raise ConfigError(
                "The llamacpp backend needs the optional extra: "
                '`.venv/bin/pip install -e ".[llamacpp]"` (see the README for the portable build flags).'
            ) from exc
        model: BaseChatModel = ChatLlamaCpp(
            model_path=str(settings.llamacpp_model_path),
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            n_ctx=8192,
            streaming=True,
            verbose=False,
        )
        return model
    raise ConfigError(f"The backend '{settings.backend}' does not use a language model.")
