"""Process settings that make CPU inference faster here, applied once by the app and the CLI.

glibc's malloc returns every large freed block to the kernel (mmap/munmap), so each of the
~200 activations of a forward pass is a fresh mapping whose pages fault in on first touch; on
this project's 2-core machines that alone made elementwise ops 2–4x slower. Raising the mmap and
trim thresholds keeps freed activations in the heap for reuse. Arenas are capped at two (the
two models' threads): each arena keeps its own free memory, and a server's worker threads would
otherwise each grow one (resident memory measured in benchmarks/bench_app.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit: every activation of a request
TRIM_THRESHOLD = 128 * 1024 * 1024
ARENAS = 2
HEAP_SLACK = 128 * 1024 * 1024


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def tune_allocator() -> bool:
    """Ask glibc malloc to keep large freed blocks; False where that is not glibc, or when
    SA_VIZ_NO_MALLOC_TUNING is set."""
    libc = _glibc()
    if libc is None or os.environ.get("SA_VIZ_NO_MALLOC_TUNING"):
        return False
    settings = (
        (M_ARENA_MAX, ARENAS),
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, trim_threshold()),
    )
    return all([libc.mallopt(option, value) == 1 for option, value in settings])


def trim_threshold() -> int:
    """Bytes of free heap top glibc may keep; SA_VIZ_MALLOC_TRIM_MB overrides the 128 MB.

    A trade-off measured with benchmarks/bench_app.py and bench_explain.py: 16 MB kept less
    (RSS growth over 100 requests 76 MB instead of 116 MB, peak 1459 MB instead of 1504 MB) but
    made the explanation slower (ours/floor 1.02 instead of 0.87), so the default stays 128 MB.
    """
    return int(os.environ.get("SA_VIZ_MALLOC_TRIM_MB", TRIM_THRESHOLD >> 20)) << 20


def release_free_memory() -> None:
    """Hand the heap's free pages back to the kernel (after loading models, say)."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def resident_bytes() -> int | None:
    """This process's resident memory (None where /proc is not there)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class HeapBudget:
    """Keep a server's resident memory near its working size.

    Results the cache keeps for a few requests sit among the activations freed around them, and
    glibc hands back only free memory at the heap's top: without help the heap grows by about
    1 MB a request until it levels off (measured with benchmarks/bench_app.py: 116 MB from
    request 10 to 100). `enforce` returns every free page (malloc_trim, ~8 ms) once resident
    memory passes its size after warm-up (`start`) plus `slack`. The request after a trim is
    ~30 ms slower while the heap faults its working memory in again, so trims are at least
    `every` requests apart: memory that is really in use (a cache of large images) costs at
    most one trim per `every` requests, never one per request.
    """

    def __init__(self, slack: int | None = None, every: int = 16) -> None:
        self.slack = heap_slack() if slack is None else slack
        self.every = every
        self.limit: int | None = None
        self.trims = 0
        self._since = 0  # requests since the last trim

    def start(self) -> None:
        size = resident_bytes()
        self.limit = None if size is None or _glibc() is None else size + self.slack
        self._since = self.every

    def enforce(self, *, force: bool = False) -> bool:
        """After a request: release free memory if over the limit (or `force`); True if it did."""
        self._since += 1
        due = self.limit is not None and self._since >= self.every
        size = resident_bytes() if force or due else None
        if not force and (size is None or size <= self.limit):
            return False
        release_free_memory()
        self.trims += 1
        self._since = 0
        log.info(
            "free heap memory returned: %d → %d MB resident",
            (size or 0) >> 20,
            (resident_bytes() or 0) >> 20,
        )
        return True


def heap_slack() -> int:
    """Bytes a server's resident memory may grow past its warmed-up size before free heap pages
    are handed back; SA_VIZ_HEAP_SLACK_MB overrides the 128 MB."""
    return int(os.environ.get("SA_VIZ_HEAP_SLACK_MB", HEAP_SLACK >> 20)) << 20
