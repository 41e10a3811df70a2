"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, with scripted replies.

Tests drive policies through the real ``openai`` client against it. Replies come from a *responder*: a
callable ``(request_json) -> reply``, or a list of replies served in order. A reply is

* a ``str``: the assistant message content (``finish_reason="stop"``);
* a :class:`Reply`: content plus ``finish_reason`` / ``usage`` / ``delay``, and what vLLM-style servers add
  when asked: ``reasoning_content``, ``tool_calls``, ``prompt_token_ids`` (on the response) and ``token_ids``
  (on the choice) for ``return_token_ids``, ``logprobs`` (per completion token);
* an :class:`ErrorReply`: an HTTP error with an OpenAI-style error body (``ErrorReply.context_length()``,
  ``.rate_limited()``, ``.server_error()``).

Every request body is recorded in ``server.requests`` (in arrival order, thread-safe).

Usage (the ``openai_server`` fixture yields a started server; import it into a conftest or test module)::

    from tests.support.openai_server import ErrorReply, openai_server  # noqa: F401

    def test_x(openai_server):
        openai_server.responder = [ErrorReply.server_error(), '{"analysis": ...}']
        policy = OpenAIPolicy("scripted", base_url=openai_server.base_url, backoff=0.01)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    content: str
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    delay: float = 0.0
    """Seconds to wait before answering."""
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


@dataclass
class ErrorReply:
    status: int
    message: str = "error"
    code: str | None = None
    type: str = "invalid_request_error"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def context_length(cls, message: str | None = None) -> ErrorReply:
        return cls(
            400,
            message
            or "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
            code="context_length_exceeded",
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> ErrorReply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(429, "Rate limit reached", code="rate_limit_exceeded", type="requests", headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> ErrorReply:
        return cls(status, "The server had an error while processing your request", type="server_error")


ReplySpec = str | Reply | ErrorReply
Responder = Callable[[dict[str, Any]], ReplySpec] | Sequence[ReplySpec]


def _words(text: str) -> int:
    return len(text.split())


class ScriptedOpenAIServer:
    """``POST /v1/chat/completions`` (and ``GET /v1/models``) on 127.0.0.1, in a background thread."""

    def __init__(self, responder: Responder | None = None, *, model: str = "scripted-model"):
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._script: list[ReplySpec] = []
        self._fn: Callable[[dict[str, Any]], ReplySpec] | None = None
        self.responder = responder
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def responder(self) -> Responder | None:
        return self._fn if self._fn is not None else list(self._script)

    @responder.setter
    def responder(self, value: Responder | None) -> None:
        with self._lock:
            if value is None:
                self._fn, self._script = None, []
            elif callable(value):
                self._fn, self._script = value, []
            else:
                self._fn, self._script = None, list(value)

    def _next_reply(self, body: dict[str, Any]) -> ReplySpec:
        with self._lock:
            self.requests.append(body)
            if self._fn is not None:
                fn = self._fn
            elif self._script:
                return self._script.pop(0)
            else:
                return ErrorReply(
                    400, "scripted server: no reply left in the script", code="script_exhausted"
                )
        return fn(body)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(
                        400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}}
                    )
                    return
                try:
                    reply = server._next_reply(body)
                except Exception as e:  # a responder bug shows up as a 500 with its message
                    reply = ErrorReply(500, f"responder failed: {type(e).__name__}: {e}", type="server_error")
                if isinstance(reply, ErrorReply):
                    err = {"message": reply.message, "type": reply.type, "param": None, "code": reply.code}
                    self._send(reply.status, {"error": err}, reply.headers)
                    return
                if isinstance(reply, str):
                    reply = Reply(reply)
                if reply.delay:
                    time.sleep(reply.delay)
                prompt = sum(_words(str(m.get("content") or "")) for m in body.get("messages", []))
                usage = reply.usage or {
                    "prompt_tokens": prompt,
                    "completion_tokens": _words(reply.content),
                    "total_tokens": prompt + _words(reply.content),
                }
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.reasoning_content is not None:
                    message["reasoning_content"] = reply.reasoning_content
                if reply.tool_calls is not None:
                    message["tool_calls"] = reply.tool_calls
                choice: dict[str, Any] = {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
                if reply.logprobs is not None:
                    choice["logprobs"] = {
                        "content": [
                            {"token": f"token_id:{t}", "logprob": lp, "bytes": None, "top_logprobs": []}
                            for t, lp in zip(
                                reply.token_ids or [0] * len(reply.logprobs), reply.logprobs, strict=False
                            )
                        ]
                    }
                if reply.token_ids is not None:
                    choice["token_ids"] = reply.token_ids
                payload: dict[str, Any] = {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", server.model),
                    "choices": [choice],
                    "usage": usage,
                }
                if reply.prompt_token_ids is not None:
                    payload["prompt_token_ids"] = reply.prompt_token_ids
                self._send(200, payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def openai_server():
    """A started :class:`ScriptedOpenAIServer` (set ``.responder`` in the test)."""
    with ScriptedOpenAIServer() as server:
        yield server
