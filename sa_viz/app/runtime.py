"""Process settings that make CPU inference faster here, applied once by the app and the CLI.

glibc's malloc returns every large freed block to the kernel (mmap/munmap), so each of the
~200 activations of a forward pass is a fresh mapping whose pages fault in on first touch; on
this project's 2-core machines that alone made elementwise ops 2–4x slower. Raising the mmap and
trim thresholds keeps freed activations in the heap for reuse. All threads share one arena:
each arena keeps the pages it has touched, and which arena a request's temporary memory came
from changed from request to request (model, render and gradio's worker threads), so a
server's resident memory drifted up step by step; with one arena it stays flat (measured over
100 /explain requests with cached results out of the heap, `OffHeap`, and no trims: 23 MB
growth instead of 26–43 MB with two arenas, and no steps). The explanation was not slower
(7 alternating runs of 20 explanations each: medians 163–232 ms with one arena, 177–249 ms
with two).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import threading
import weakref
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit: every activation of a request
TRIM_THRESHOLD = 128 * 1024 * 1024
ARENAS = 1
HEAP_SLACK = 160 * 1024 * 1024


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


def single_threaded_opencv() -> None:
    """Let OpenCV draw on the calling thread only. A server draws each request's pictures on
    three threads of its own while nothing else runs; OpenCV's own worker threads then add CPU
    without making a picture sooner (measured in one process: 35.2 vs 35.8 ms for a request's
    pictures, ~9 ms less CPU) and stay busy into the next request's model passes (server time
    over 40 requests, three alternating runs each: pictures 44–47 ms instead of 48–55 ms,
    models 210–215 ms instead of 217–231 ms)."""
    import cv2

    cv2.setNumThreads(1)


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
    """Keep a server's resident memory near its working size: a bound for what the heap's
    layout still does (images of many sizes, many users), not the cure for drift (that is
    `OffHeap` and one arena).

    glibc hands back only free memory at the heap's top. `enforce` returns every free page
    (malloc_trim, ~8 ms) once resident memory passes its size after warm-up (`start`) plus
    `slack`: 160 MB, above the ~120 MB that a full cache and the pictures' working memory add
    in steady use (measured over 100 /explain requests at 224×224). The request after a trim is
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
        if self.limit is not None:
            log.info("warmed up: %d MB resident, heap budget %d MB", size >> 20, self.limit >> 20)

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


class OffHeap:
    """Copies of arrays in memory outside glibc's heap, for results that outlive their request.

    Why by hand: no library gives numpy/torch arrays a storage of their own. A cached result
    (every gate map: ~11 MB for a 224×224 input, in 32 tensors) copied inside the heap sits
    among the activations the next requests allocate and free, and the pages around it stay
    resident: over 100 requests the server grew ~5 MB a request until it levelled off ~100 MB
    higher. With the results out here its resident memory stayed flat (13 MB over 90 requests;
    both measured with /explain requests over HTTP, no heap trims). A fresh mapping costs
    ~0.8 ms per MB in page faults here, so a mapping whose arrays are all gone goes back to a
    free list (at most `keep`) and the next result reuses its pages.
    """

    ALIGN = 64

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.mapped = 0  # mappings made (reuses are not counted)
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def copy(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Copies of `arrays` sharing one mapping, which is reused once none of them is alive."""
        if not hasattr(mmap, "MAP_ANONYMOUS"):  # not a POSIX system: plain copies
            return [np.array(a) for a in arrays]
        sizes = [-(-a.nbytes // self.ALIGN) * self.ALIGN for a in arrays]
        block = self._take(max(sum(sizes), 1))
        memory = np.frombuffer(block, dtype=np.uint8)
        weakref.finalize(memory, self._give_back, block)
        copies, offset = [], 0
        for array, size in zip(arrays, sizes, strict=True):
            view = memory[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(view, array)
            copies.append(view)
            offset += size
        return copies

    def _take(self, nbytes: int) -> mmap.mmap:
        with self._lock:
            fits = [b for b in self._free if nbytes <= len(b) <= 2 * nbytes]
            if fits:
                block = min(fits, key=len)
                self._free.remove(block)
                return block
            self.mapped += 1
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(-1, nbytes, flags=flags)

    def _give_back(self, block: mmap.mmap) -> None:
        # Runs while the last array of `block` is being freed: the mapping is unmapped when the
        # last reference to `block` goes, after that array has let go of it.
        with self._lock:
            self._free.append(block)
            if len(self._free) > self.keep:
                del self._free[0]  # the oldest


def heap_slack() -> int:
    """Bytes a server's resident memory may grow past its warmed-up size before free heap pages
    are handed back; SA_VIZ_HEAP_SLACK_MB overrides the 160 MB."""
    return int(os.environ.get("SA_VIZ_HEAP_SLACK_MB", HEAP_SLACK >> 20)) << 20
