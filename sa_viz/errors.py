"""Where an unforeseen failure happened: every stage of the work runs inside `stage(name)`, so the
app and the CLI can say which stage failed (with a short error id that also stands in the log
beside the traceback) instead of a bare "something went wrong".

A foundation module: it imports nothing from the package, and every folder may import it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# Each stage's name, as "failed while …" says it.
STAGES = {
    "decoding": "decoding the image",
    "model": "running the model",
    "gates": "reading the attention gates",
    "cam": "computing the CAM",
    "analysis": "running an analysis",
    "drawing": "drawing the pictures",
    "export": "writing the files",
}
_ATTRIBUTE = "sa_viz_stage"


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Mark an exception raised inside as failed in stage `name`; the innermost stage wins, so a
    gate hook's failure inside a forward pass stays a gates failure."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    try:
        yield
    except Exception as error:
        if getattr(error, _ATTRIBUTE, None) is None:
            with suppress(AttributeError):  # an exception type without a __dict__
                setattr(error, _ATTRIBUTE, name)
        raise


def stage_of(error: BaseException, default: str | None = None) -> str | None:
    """The stage `error` was raised in (`default` when none was marked)."""
    return getattr(error, _ATTRIBUTE, None) or default


def failed_while(error: BaseException, default: str | None = None) -> str:
    """ "failed while computing the CAM", or "failed" where no stage is known."""
    name = stage_of(error, default)
    return f"failed while {STAGES[name]}" if name else "failed"


def new_error_id() -> str:
    """A short id that ties what a person sees to the server log's traceback."""
    return secrets.token_hex(4)
