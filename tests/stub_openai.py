"""A local stand-in for an OpenAI-compatible chat completions server.

Serves on 127.0.0.1 (port chosen by the OS) in a daemon thread, records
every request (path, headers, JSON body) and answers with a canned chat
completion, or with a given HTTP error status and body. ``statuses`` scripts
the first replies' statuses (e.g. ``[503, 429]``: two errors, then the normal
reply); ``delay`` holds each reply back that many seconds (timeouts);
``retry_after`` is sent as the Retry-After header of scripted errors;
``responder`` (called with each request's JSON body) scripts the reply text
per request, e.g. from the image it carries (:func:`request_image`).

    with StubOpenAI(reply_text="hello") as stub:
        decoder = OpenAICompatDecoder(base_url=stub.base_url, model="m")
        ...
        stub.requests[0]["body"]["model"]
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def request_image(body: dict[str, Any]) -> Any:
    """The image of a chat-completion request (its first ``image_url`` part,
    a PNG data URL) as a PIL image."""
    from PIL import Image

    for part in body["messages"][0]["content"]:
        if part.get("type") == "image_url":
            url = part["image_url"]["url"]
            return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    raise ValueError("request carries no image")


class StubOpenAI:
    def __init__(
        self,
        reply_text: str = "",
        *,
        status: int = 200,
        error_body: str = '{"error": {"message": "stub error"}}',
        finish_reason: str = "stop",
        statuses: list[int] | None = None,
        delay: float = 0.0,
        retry_after: str | None = None,
        responder: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.responder = responder
        self.statuses = list(statuses or [])
        self.delay = delay
        self.retry_after = retry_after
        self.reply_text = reply_text
        self.status = status
        self.error_body = error_body
        self.finish_reason = finish_reason
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if stub.delay:
                    time.sleep(stub.delay)
                if stub.statuses:
                    self._send(stub.statuses.pop(0), stub.error_body.encode("utf-8"),
                               retry_after=stub.retry_after)
                    return
                if stub.status != 200:
                    self._send(stub.status, stub.error_body.encode("utf-8"))
                    return
                try:
                    text = stub.reply_text if stub.responder is None else stub.responder(body or {})
                except Exception as exc:  # a broken script shows as a server error
                    self._send(500, json.dumps({"error": {"message": repr(exc)}}).encode())
                    return
                reply = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "model": (body or {}).get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": stub.finish_reason,
                        }
                    ],
                    "usage": {"prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312},
                }
                self._send(200, json.dumps(reply).encode("utf-8"))

            def _send(self, status: int, payload: bytes, retry_after: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
