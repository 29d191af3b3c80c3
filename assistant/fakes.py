"""A scripted chat model: deterministic stand-in for a language model in tests and demos.

Each call takes the next scripted reply; a reply that is an exception is raised instead, so tests
can script an endpoint that fails. Replies stream word by word, like a real model. The messages
each call received are kept for inspection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr


class ScriptedChatModel(BaseChatModel):
    replies: list[str | BaseException] = Field(default_factory=list)
    #: Raise this after streaming this many pieces (a server that closes mid-stream).
    fail_after_pieces: int | None = None
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        return self._calls

    def _next(self, messages: list[BaseMessage]) -> str:
        self._calls.append(messages)
        if not self.replies:
            raise RuntimeError("ScriptedChatModel has no reply left")
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._next(messages)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._next(messages)
        for count, piece in enumerate(re.findall(r"\S+\s*|\s+", text)):
            if self.fail_after_pieces is not None and count >= self.fail_after_pieces:
                raise ConnectionError("the scripted server closed the stream")
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
