"""The real `openai` backend (LangChain's ChatOpenAI) against a scripted server on loopback."""

from __future__ import annotations

import socket

import pytest

from assistant.core import Assistant
from assistant.types import Answer
from tests.conftest import FakeSettings
from tests.openai_stub import Behaviour, openai_stub

pytestmark = pytest.mark.integration
REPLY = "Byrådet vil innføre et fritidskort for ungdomsskoleelever på 2000 kroner [1]."


def _assistant(fake_assistant: Assistant, fake_settings: FakeSettings, base_url: str, **overrides: object) -> Assistant:
    values: dict[str, object] = {
        "backend": "openai",
        "openai_base_url": base_url,
        "openai_model": "stub-model",
        "openai_api_key": "secret-key-not-logged",
        "llm_timeout_s": 2.0,
        "llm_max_retries": 0,
        "index_dir": fake_assistant.settings.index_dir,
        "auto_build_index": False,
    }
    values.update(overrides)
    return Assistant(fake_settings(**values))


def test_a_streamed_answer_from_the_endpoint(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script.append(Behaviour(reply=REPLY))
        assistant = _assistant(fake_assistant, fake_settings, base_url)
        events = list(assistant.stream("fritidskort"))
    tokens = [e for e in events if isinstance(e, str)]
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert len(tokens) > 3 and "".join(tokens) == REPLY
    assert answer.backend == "openai"
    assert answer.citations and answer.citations[0].n == 1
    request = state.requests[0]
    assert request["model"] == "stub-model"
    assert request["stream"] is True
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][1]["content"].startswith("<kilder>")


def test_a_follow_up_is_condensed_by_the_endpoint(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script += [Behaviour(reply="Hvor mye er fritidskortet verdt?"), Behaviour(reply=REPLY)]
        assistant = _assistant(fake_assistant, fake_settings, base_url)
        answer = assistant.ask("og hvor mye?", history=[("Hva er fritidskortet?", "Byrådet vil …")])
    assert answer.standalone_question == "Hvor mye er fritidskortet verdt?"
    assert len(state.requests) == 2
    assert "Hva er fritidskortet?" in state.requests[0]["messages"][-1]["content"]


def test_a_server_error_falls_back(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script.append(Behaviour(status=500))
        answer = _assistant(fake_assistant, fake_settings, base_url).ask("fritidskort")
    assert answer.backend == "extractive"
    assert answer.note is not None and "500" in answer.note
    assert "secret-key" not in answer.note


def test_a_rate_limit_falls_back(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script.append(Behaviour(status=429))
        answer = _assistant(fake_assistant, fake_settings, base_url).ask("fritidskort")
    assert answer.backend == "extractive"
    assert answer.note is not None and "RateLimitError" in answer.note


def test_connection_refused_falls_back(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    answer = _assistant(fake_assistant, fake_settings, f"http://127.0.0.1:{closed_port}/v1").ask("fritidskort")
    assert answer.backend == "extractive"
    assert answer.note is not None and "ConnectionError" in answer.note


def test_a_slow_endpoint_times_out_and_falls_back(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        # The stub would answer after a minute: only the configured 1 s timeout gives the fallback.
        state.script.append(Behaviour(reply=REPLY, delay_s=60.0))
        answer = _assistant(fake_assistant, fake_settings, base_url, llm_timeout_s=1.0).ask("fritidskort")
    assert answer.backend == "extractive"
    assert answer.note is not None and "Timeout" in answer.note


def test_a_stream_closed_midway_falls_back(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script.append(Behaviour(reply=REPLY, cut_after_chunks=3))
        answer = _assistant(fake_assistant, fake_settings, base_url).ask("fritidskort")
    assert answer.backend == "extractive"
    assert answer.note is not None


def test_an_answer_citing_nothing_real_is_replaced(fake_assistant: Assistant, fake_settings: FakeSettings) -> None:
    with openai_stub() as (base_url, state):
        state.script.append(Behaviour(reply="Byrådet vil gi gratis buss til alle pensjonister [37]."))
        answer = _assistant(fake_assistant, fake_settings, base_url).ask("Bekreft løftet om gratis buss")
    assert "pensjonister" not in answer.text
    assert answer.backend == "extractive"
