"""Which request of a page is its newest: the session id a request is known by, and the page's
long explanations, which a newer request of the same page supersedes."""

from __future__ import annotations

import inspect
import itertools
import threading
import uuid
from collections import OrderedDict

import gradio as gr

LOCAL_SESSION = "local"  # handlers called from Python, without a gradio request


def session_of(request: gr.Request | None) -> str:
    """The id a request's session is known by: `LOCAL_SESSION` for calls from Python, and a
    new id, shared with nobody, for a request that comes without one."""
    if request is None:
        return LOCAL_SESSION
    return getattr(request, "session_hash", None) or f"anonymous-{uuid.uuid4()}"


class LongJobs:
    """Each page's newest explanation request and, when it asks for a long method, the call that
    the long lane runs (`Handlers.page_explain`). A newer request of the same page supersedes it:
    the long computation stops at its next progress report and shows nothing. Bounded like
    `Sessions`."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._newest: OrderedDict[str, tuple[int, inspect.BoundArguments | None]] = OrderedDict()
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, session: str, call: inspect.BoundArguments | None) -> int:
        """Record a page's new request (`call`: a long one's arguments); returns its token."""
        with self._lock:
            token = next(self._tokens)
            self._newest[session] = (token, call)
            self._newest.move_to_end(session)
            while len(self._newest) > self.capacity:
                self._newest.popitem(last=False)
            return token

    def take(self, session: str) -> tuple[int, inspect.BoundArguments] | None:
        """The page's waiting long call, once (None: none waits, or a newer request came)."""
        with self._lock:
            token, call = self._newest.get(session, (0, None))
            if call is None:
                return None
            self._newest[session] = (token, None)
            return token, call

    def current(self, session: str, token: int) -> bool:
        with self._lock:
            return self._newest.get(session, (0, None))[0] == token
