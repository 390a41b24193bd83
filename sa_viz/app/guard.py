"""What the server refuses at the HTTP level, before gradio reads a request: bodies over a size
bound, and routes this app does not use. Plain ASGI, so no gradio here.

gradio reads and parses a request's whole JSON body before any handler of ours can look at it:
eight 100 MB bodies took a server from 2.3 to 4.1 GB. The bound here lets through exactly one
image of the upload limit sent as a base64 `data:` URL, plus room for the rest of the request
(the precise per-image limit is then checked by `sa_viz.data.preprocess`, with its own message); a
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
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLOSED_ROUTES = ("/gradio_api/deep_link", "/gradio_api/stream")
# gradio's file routes download and relay any http(s) URL put where a file name goes.
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/file=", "/file/")
LINK = re.compile(r"^\s*([a-z][a-z0-9+.\-]*:)?//|^\s*[a-z][a-z0-9+.\-]*:/", re.IGNORECASE)
LINKS_REFUSED = (
    "Links are not fetched: this server never downloads anything. Upload the image itself, or "
    "send its bytes as a data: URL."
)
# Session ids: gradio's pages and clients make 11–36 letters, digits and dashes. A longer one
# would be kept as a key in several of gradio's tables (and in `Sessions`) for good.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SESSION_IN_BODY = re.compile(rb'"session_hash"\s*:\s*("(?:[^"\\]{0,200})"?|null)')
BAD_SESSION = "session_hash must be 1–64 letters, digits, '-' or '_' (as gradio's clients make it)."

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
        if await self._refused_before_body(scope, path, send):
            return
        state = {"received": 0, "refused": False, "tail": b""}
        scan = path.endswith("/queue/join") or "/call/" in path  # bodies that name a session

        async def bounded_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not state["refused"]:
                body = message.get("body", b"")
                state["received"] += len(body)
                if state["received"] > self.max_body:
                    state["refused"] = True
                    await _respond(send, 413, self._too_large(None), close=True)
                    return {"type": "http.disconnect"}
                if scan:
                    window = state["tail"] + body  # a key may straddle two chunks
                    if not _body_sessions_ok(window, message.get("more_body", False)):
                        state["refused"] = True
                        await _respond(send, 400, BAD_SESSION, close=True)
                        return {"type": "http.disconnect"}
                    state["tail"] = window[-300:]
            return message

        async def guarded_send(message: Message) -> None:
            if not state["refused"]:  # the app's own answer to a refused body is dropped
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)

    async def _refused_before_body(self, scope: Scope, path: str, send: Send) -> bool:
        """Answer a request that its route, query or headers already refuse; True if answered."""
        if any(path == route or path.startswith(route + "/") for route in self.closed):
            await _respond(send, 404, "Not found: this app does not offer that route.")
            return True
        for route in FILE_ROUTES:
            if path.startswith(route) and LINK.match(path[len(route) :]):
                await _respond(send, 403, LINKS_REFUSED)
                return True
        if not _session_ids_ok(scope, path):
            await _respond(send, 400, BAD_SESSION)
            return True
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _respond(send, 413, self._too_large(length), close=True)
            return True
        return False


def _session_ids_ok(scope: Scope, path: str) -> bool:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    ids = query.get("session_hash", [])
    if "/heartbeat/" in path:
        ids.append(path.rsplit("/heartbeat/", 1)[-1])
    return all(SESSION_ID.match(i) for i in ids)


def _body_sessions_ok(window: bytes, more: bool) -> bool:
    for match in SESSION_IN_BODY.finditer(window):
        value = match.group(1)
        if value == b"null":
            continue
        if not value.endswith(b'"') or len(value) < 3:
            if more and match.end() == len(window):
                continue  # cut by the chunk's end: seen whole with the next chunk
            return False
        if not SESSION_ID.match(value[1:-1].decode("latin-1")):
            return False
    return True


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
