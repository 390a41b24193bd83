"""What the server refuses at the HTTP level, before gradio reads a request: bodies over a size
bound, and routes this app does not use. Plain ASGI, so no gradio here.

gradio reads and parses a request's whole JSON body before any handler of ours can look at it:
eight 100 MB bodies took a server from 2.3 to 4.1 GB. The bound here lets through exactly one
image of the upload limit sent as a base64 `data:` URL, plus room for the rest of the request
(the precise per-image limit is then checked by `sa_viz.preprocess`, with its own message); a
larger body is answered 413 from its Content-Length without being read, or, when it is sent
in chunks without one, as soon as it passes the bound.

Closed routes: `/gradio_api/deep_link` writes a copy of a session's components into the upload
folder on every call (deep links are a gradio feature this app does not offer), and
`/gradio_api/stream/…` takes streamed inputs and serves streamed outputs, which this app has
neither of (its POST route has no login check and replaces a queued event's data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLOSED_ROUTES = ("/gradio_api/deep_link", "/gradio_api/stream")
REQUEST_SLACK = 2 * 2**20  # the JSON or multipart around one image: names, settings, framing


def body_limit(max_image_bytes: int) -> int:
    """The largest request body a server that takes images up to `max_image_bytes` needs."""
    return math.ceil(max_image_bytes * 4 / 3) + REQUEST_SLACK


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


class RequestGuard:
    """ASGI middleware: refuses bodies over `max_body` bytes (413) and closes `closed` routes
    (404), each with a sentence in JSON's `detail`, as FastAPI answers errors."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_image_bytes: int | None = None,
        closed: tuple[str, ...] = CLOSED_ROUTES,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_image_bytes = max_image_bytes
        self.closed = closed

    def _too_large(self, size: int | None) -> str:
        sent = f"This request is {_mb(size)}" if size else "This request is larger than that"
        image = (
            f" (one image of at most {_mb(self.max_image_bytes)}, uploaded or as a data: URL)"
            if self.max_image_bytes
            else ""
        )
        return (
            f"{sent}; this server takes requests of at most {_mb(self.max_body)}{image}. "
            "Send a smaller image."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "").removeprefix(scope.get("root_path", "")) or "/"
        if any(path == route or path.startswith(route + "/") for route in self.closed):
            await _respond(send, 404, "Not found: this app does not offer that route.")
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _respond(send, 413, self._too_large(length), close=True)
            return
        state = {"received": 0, "refused": False}

        async def bounded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not state["refused"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body:
                    state["refused"] = True
                    await _respond(send, 413, self._too_large(None), close=True)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not state["refused"]:  # the app's own answer to a refused body is dropped
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _respond(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
