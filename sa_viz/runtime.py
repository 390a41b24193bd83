"""Process settings that make CPU inference faster here, applied once by the app and the CLI.

glibc's malloc returns every large freed block to the kernel (mmap/munmap), so each of the
~200 activations of a forward pass is a fresh mapping whose pages fault in on first touch; on
this project's 2-core machines that alone made elementwise ops 2–4x slower. Raising the mmap and
trim thresholds keeps freed activations in the heap for reuse (resident memory stays bounded by
the peak of one request, measured in benchmarks/bench_app.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit: every activation of a request
TRIM_THRESHOLD = 256 * 1024 * 1024


def tune_allocator() -> bool:
    """Ask glibc malloc to keep large freed blocks; False where that is not glibc."""
    if os.environ.get("SA_VIZ_NO_MALLOC_TUNING"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    log.debug("malloc tuning %s", "applied" if ok else "refused")
    return ok
