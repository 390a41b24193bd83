"""The process settings for CPU inference: the heap budget that keeps a server's memory bounded."""

from __future__ import annotations

import pytest

from sa_viz import runtime
from sa_viz.runtime import HeapBudget, resident_bytes

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
