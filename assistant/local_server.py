"""The local backend's runtime: llama.cpp's own server (the prebuilt `xllamacpp` wheel) on a
loopback port, started once per process and shared by every session.

The model is reached over the same OpenAI-compatible HTTP API as any other endpoint, so the
`local` backend uses the same LangChain client, streaming, timeout, citation guard and fallback as
the `openai` backend; only where the endpoint comes from differs. The server binds 127.0.0.1 on a
port the operating system picks, and asks for a random per-process API key, so another user of the
machine cannot borrow the model through the open port.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ModelUnavailableError
from assistant.local_models import resolve_local_model
from assistant.settings import Settings

logger = logging.getLogger("assistant")


class LocalModelLoadError(ModelUnavailableError):
    """The GGUF file is there but llama.cpp could not load it."""

    code = "local_model_load_failed"


@dataclass(frozen=True)
class ServerKey:
    path: Path
    context_tokens: int
    threads: int
    max_tokens: int


class LocalServer:
    """One llama.cpp server with one model loaded. `close()` (or process exit) stops it."""

    def __init__(self, key: ServerKey) -> None:
        import xllamacpp

        self.key = key
        self.api_key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(key.path)
        params.n_ctx = key.context_tokens
        params.cpuparams.n_threads = key.threads
        params.cpuparams_batch.n_threads = key.threads
        # One slot gets the whole context; on a few cores parallel slots would only split the
        # same compute, so concurrent sessions queue instead.
        params.n_parallel = 1
        # A hard cap on top of the client's max_completion_tokens: a runaway answer ends here
        # even if a client leaves the budget out.
        params.n_predict = key.max_tokens
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the operating system picks a free port
        params.api_keys = [self.api_key]
        params.offline = True  # never try a model hub
        params.ui = False
        params.verbosity = 0
        started = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise LocalModelLoadError(
                f"llama.cpp kunne ikke laste {key.path} / could not load the model ({exc}). The file may be "
                "damaged or too large for the memory: install it again with `python -m assistant models install "
                "<name>`, or set ASSISTANT_LOCAL_CONTEXT_TOKENS lower."
            ) from exc
        self.load_s = time.perf_counter() - started
        self.base_url = f"{self._server.listening_address}/v1"
        logger.info(
            "local model loaded",
            extra={"model": str(key.path), "load_s": round(self.load_s, 2), "threads": key.threads},
        )

    @property
    def model_name(self) -> str:
        return self.key.path.stem

    def close(self) -> None:
        """Stop the HTTP server and free the model (xllamacpp does both when the server object goes)."""
        self._server = None


_lock = threading.Lock()
_servers: dict[ServerKey, LocalServer] = {}
_atexit_registered = False


def server_key(settings: Settings) -> ServerKey:
    path = resolve_local_model(settings.local_model, settings.models_dir).resolve()
    return ServerKey(path, settings.local_context_tokens, settings.local_threads, settings.local_max_tokens)


def shared_server(settings: Settings) -> LocalServer:
    """The process's server for these settings, started (the model loaded) on first use.

    Thread-safe: sessions that ask at the same time wait for the one load instead of loading the
    model twice (2 GB each).
    """
    global _atexit_registered  # noqa: PLW0603 - one registry per process is the point
    key = server_key(settings)
    with _lock:
        server = _servers.get(key)
        if server is None:
            server = LocalServer(key)
            _servers[key] = server
            if not _atexit_registered:
                atexit.register(shutdown_all)
                _atexit_registered = True
        return server


def loaded_servers() -> int:
    with _lock:
        return len(_servers)


def shutdown_all() -> None:
    """Stop every local server of this process (at exit, or between tests)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()
