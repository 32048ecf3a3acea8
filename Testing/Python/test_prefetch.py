"""The next item is prepared beside the caller's work, in order, each failure delivered with its own item, by a
thread that takes no time from the networks."""

from __future__ import annotations

import os
import threading

import pytest

from RheumImagingLib.prefetch import ahead


def test_items_come_in_order_with_their_own_errors():
    def prepare(item):
        if item == "bad":
            raise ValueError(f"cannot read {item}")
        return item * 2

    got = list(ahead(prepare, [1, "bad", 3]))
    assert [(item, prepared) for item, prepared, _ in got] == [(1, 2), ("bad", None), (3, 6)]
    assert [str(error) if error else None for *_, error in got] == [None, "cannot read bad", None]
    assert list(ahead(prepare, [])) == []


def test_the_next_item_is_prepared_while_the_caller_works_on_this_one():
    second_started = threading.Event()

    def prepare(item):
        if item == 2:
            second_started.set()
        return item

    for item, _, _ in ahead(prepare, [1, 2]):
        if item == 1:  # the caller is still on item 1
            assert second_started.wait(timeout=10)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_the_worker_runs_at_idle_priority_and_the_caller_does_not():
    (_, policy, _), = ahead(lambda item: os.sched_getscheduler(0), [0])
    assert policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE
