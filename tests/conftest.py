"""Shared fixtures: settings for the deterministic fake embedder, and one assistant over the real corpus.

Nothing here touches the project's own `index/`, `models/` or `.cache/`: every path points into
pytest's temporary folders. Unit tests run with the network switched off (`network_guard`), so a
test that would download a model or tokenizer data fails instead of quietly going online.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant.core import Assistant
from assistant.relevance import TermIndex
from assistant.scope import Catalogue
from assistant.settings import FAKE_MODEL, PROJECT_ROOT, Settings, load_settings
from assistant.types import Chunk

#: Builds `Settings` for the fake embedder; keyword arguments override any field.
FakeSettings = Callable[..., Settings]

REAL_CORPUS_DIR = PROJECT_ROOT / "corpus"
#: Paths the tests must never write to.
PROTECTED_DIRS = (PROJECT_ROOT / "index", PROJECT_ROOT / "models")


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch cache (tokenizer data) shared by the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session", autouse=True)
def _hermetic_environment(session_cache_dir: Path) -> Iterator[None]:
    """No ASSISTANT_* variable from the developer's shell leaks into a test; tiktoken's cache is ours."""
    with pytest.MonkeyPatch.context() as patcher:
        for key in list(os.environ):
            if key.startswith("ASSISTANT_"):
                patcher.delenv(key)
        patcher.setenv("TIKTOKEN_CACHE_DIR", str(session_cache_dir / "tiktoken"))
        yield


class NetworkBlockedError(OSError):
    """Raised in place of a connection or name lookup inside `network_guard`."""


@contextmanager
def network_guard() -> Iterator[list[str]]:
    """Connections to internet addresses and name lookups fail inside the block, and the block fails
    afterwards if anything tried one, even when a library caught the error and went on quietly.

    Creating a socket is allowed (langchain-openai probes socket options on an unconnected one);
    Unix sockets stay usable (asyncio's event loop uses a socketpair internally)."""
    attempts: list[str] = []
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def blocked(kind: str, target: object) -> NetworkBlockedError:
        attempts.append(f"{kind} {target!r}")
        return NetworkBlockedError(f"unit tests run offline: {kind} {target!r} was blocked")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return original_connect(self, address)
        raise blocked("connect", address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family == socket.AF_UNIX:
            return original_connect_ex(self, address)
        raise blocked("connect", address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise blocked("getaddrinfo", host)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield attempts
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo
    if attempts:
        pytest.fail(f"The test tried to use the network ({'; '.join(attempts)}); unit tests run offline.")


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests are offline: any attempt to open an internet socket fails the test."""
    if any(request.node.get_closest_marker(m) is not None for m in ("integration", "e2e")):
        yield
        return
    with network_guard():
        yield


@pytest.fixture
def anyio_backend() -> str:
    """Async standard tests (LangChain's suites) run on asyncio only."""
    return "asyncio"


def _settings(root: Path, cache_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_model": FAKE_MODEL,
        "corpus_dir": REAL_CORPUS_DIR,
        "index_dir": root / "index",
        "models_dir": root / "models",
        "cache_dir": cache_dir,
        # A developer's .env must not change what the tests see.
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def fake_settings(tmp_path: Path, session_cache_dir: Path) -> FakeSettings:
    """Factory: `fake_settings(corpus_dir=..., chunk_max_tokens=...)` -> Settings for the fake embedder."""

    def make(**overrides: Any) -> Settings:
        return _settings(tmp_path, session_cache_dir, **overrides)

    return make


@pytest.fixture(scope="session")
def fake_assistant(tmp_path_factory: pytest.TempPathFactory, session_cache_dir: Path) -> Assistant:
    """An assistant over the real corpus with the hashing embedder; its index is built once."""
    root = tmp_path_factory.mktemp("fake-assistant")
    settings = _settings(root, session_cache_dir, auto_build_index=False)
    assistant = Assistant(settings)
    assistant.build_index()
    return assistant


@pytest.fixture(scope="module")
def chunks(fake_assistant: Assistant) -> list[Chunk]:
    """The fake assistant's chunks, in index order."""
    return fake_assistant.index.chunks


@pytest.fixture(scope="module")
def terms(fake_assistant: Assistant, chunks: list[Chunk]) -> TermIndex:
    """The word index over those chunks (a file may override it)."""
    return TermIndex(chunks, fake_assistant.index.decompounder)


@pytest.fixture(scope="module")
def catalogue(fake_assistant: Assistant) -> Catalogue:
    """The fake assistant's headings, chapters and themes."""
    return fake_assistant.catalogue


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip single LangChain standard tests that cannot apply to our classes.

    A standard-suite class lists them in `standard_tests_skipped = {test name: reason}`. They are
    skipped here rather than overridden, because the suites forbid overriding a standard test.
    """
    for item in items:
        cls = getattr(item, "cls", None)
        skipped: dict[str, str] = getattr(cls, "standard_tests_skipped", {}) if cls is not None else {}
        name = getattr(item, "originalname", item.name)
        if name in skipped:
            item.add_marker(pytest.mark.skip(reason=skipped[name]))
