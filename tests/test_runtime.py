"""The process settings for a long-running server: the heap budget and off-heap results."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from sa_viz.app import runtime
from sa_viz.app.runtime import HeapBudget, resident_bytes

needs_glibc = pytest.mark.skipif(
    runtime._glibc() is None or resident_bytes() is None, reason="glibc and /proc only"
)


@needs_glibc
def test_the_budget_trims_over_its_limit_at_most_once_per_interval():
    budget = HeapBudget(slack=0, every=3)
    budget.start()
    assert budget.limit is not None and budget.limit == pytest.approx(resident_bytes(), rel=0.05)
    budget.limit = 0  # as if resident memory had grown past the slack
    assert budget.enforce()  # the first request after warm-up may trim
    assert [budget.enforce(), budget.enforce()] == [False, False]  # then not for 3 requests
    assert budget.enforce() and budget.trims == 2


@needs_glibc
def test_under_its_limit_the_budget_never_trims_unless_forced():
    budget = HeapBudget(slack=1 << 40, every=1)
    budget.start()
    assert not any(budget.enforce() for _ in range(5))
    assert budget.enforce(force=True) and budget.trims == 1


def test_without_a_start_there_is_no_limit():
    budget = HeapBudget(slack=0, every=1)
    assert budget.limit is None and not budget.enforce()


def test_the_slack_can_be_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("SA_VIZ_HEAP_SLACK_MB", "64")
    assert HeapBudget().slack == 64 << 20
    monkeypatch.delenv("SA_VIZ_HEAP_SLACK_MB")
    assert HeapBudget().slack == runtime.HEAP_SLACK


def test_off_heap_copies_are_equal_and_share_one_mapping():
    store = runtime.OffHeap(keep=2)
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2], np.ones((5, 7), np.uint8)]
    copies = store.copy(arrays)
    for copy, array in zip(copies, arrays, strict=True):
        assert copy.dtype == array.dtype and np.array_equal(copy, array)
        assert not np.shares_memory(copy, array)
    assert store.mapped == 1
    copies[0][...] = -1  # writable, and apart from each other
    assert np.array_equal(copies[1], arrays[1])


def test_a_mapping_is_reused_only_when_no_copy_of_it_is_alive():
    store = runtime.OffHeap(keep=2)
    first = store.copy([np.zeros(1000, np.float32)])
    held = torch.from_numpy(first[0])[10:20]  # a torch view of a copy keeps the mapping
    del first
    store.copy([np.zeros(1000, np.float32)])  # dropped at once: its mapping goes back
    assert store.mapped == 2
    second = store.copy([np.full(1000, 7, np.float32)])
    assert store.mapped == 2 and torch.equal(held, torch.zeros(10))  # reused, not the held one
    del held, second
    gc.collect()
    store.copy([np.zeros(900, np.float32)])  # fits a free mapping (at most twice its size)
    store.copy([np.zeros(10_000, np.float32)])  # does not: a new one
    assert store.mapped == 3


def test_at_most_keep_free_mappings_stay():
    store = runtime.OffHeap(keep=1)
    alive = [store.copy([np.zeros(100 * (i + 1), np.float32)]) for i in range(3)]
    del alive
    gc.collect()
    assert len(store._free) == 1
