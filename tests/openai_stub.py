"""A tiny OpenAI-compatible chat server on loopback, scripted per request, for backend tests.

Each request takes the next behaviour: a reply (streamed as server-sent events when the request
asks for streaming), an HTTP error status, a delay, or a stream that is cut off midway.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    reply: str = ""
    status: int = 200
    delay_s: float = 0.0
    cut_after_chunks: int | None = None


@dataclass
class StubState:
    script: list[Behaviour] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"role": "assistant", "content": content}
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def _handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            state.requests.append(body)
            behaviour = state.script.pop(0) if state.script else Behaviour(reply="(ingen flere svar)")
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)
            if behaviour.status != 200:
                payload = json.dumps({"error": {"message": "stub error", "type": "server_error"}}).encode()
                self.send_response(behaviour.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if body.get("stream"):
                self._stream(behaviour)
            else:
                self._complete(behaviour)

        def _complete(self, behaviour: Behaviour) -> None:
            payload = json.dumps(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "stub",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": behaviour.reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
                ensure_ascii=False,
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, behaviour: Behaviour) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            words = behaviour.reply.split(" ")
            for index, word in enumerate(words):
                if behaviour.cut_after_chunks is not None and index >= behaviour.cut_after_chunks:
                    self.wfile.flush()
                    self.close_connection = True
                    return  # the connection closes without the end of the stream
                self.wfile.write(_chunk(word + (" " if index < len(words) - 1 else "")))
                self.wfile.flush()
            self.wfile.write(_chunk(None, "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected; no traceback on stderr."""


@contextmanager
def openai_stub() -> Iterator[tuple[str, StubState]]:
    """Yields (base_url, state); the server stops when the block ends."""
    state = StubState()
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
