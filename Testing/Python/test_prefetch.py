"""The next item is prepared beside the caller's work, in order, each failure delivered with its own item, by a
thread that takes no time from the networks; or two items are worked on at once, still delivered in order, with no
more started than that."""

from __future__ import annotations

import os
import threading

import pytest

from RheumImagingLib import prefetch
from RheumImagingLib.prefetch import ahead, concurrently


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


@pytest.mark.parametrize("width", [1, 2, 3])
def test_concurrent_work_comes_back_in_order_with_its_own_errors(width):
    def work(item):
        if item % 4 == 1:
            raise ValueError(f"cannot read {item}")
        return -item

    got = list(concurrently(work, range(9), width))
    assert [item for item, _, _ in got] == list(range(9))
    assert [result for _, result, _ in got] == [None if k % 4 == 1 else -k for k in range(9)]
    assert [str(error) if error else None for *_, error in got] == [f"cannot read {k}" if k % 4 == 1 else None
                                                                    for k in range(9)]
    assert list(concurrently(work, [], width)) == []


def test_two_items_are_worked_on_at_once_and_no_more_are_started():
    both = threading.Barrier(2, timeout=10)  # one item at a time would never pass it
    running, most = set(), [0]
    lock = threading.Lock()

    def work(item):
        with lock:
            running.add(item)
            most[0] = max(most[0], len(running))
        both.wait()
        with lock:
            running.discard(item)
        return item

    started = []
    items = (started.append(k) or k for k in range(6))
    for item, result, error in concurrently(work, items, 2):
        assert error is None and result == item
        assert len(started) <= item + 3  # the items being worked on, and the one the caller holds
    assert most[0] == 2


def test_width_one_works_in_the_callers_thread():
    (_, thread, _), = concurrently(lambda item: threading.current_thread(), [0], 1)
    assert thread is threading.current_thread()


def test_each_of_two_network_calls_gets_half_the_cores(monkeypatch):
    for cores, threads in ((8, 4), (3, 1), (2, 1), (1, 1)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert prefetch.cores() == cores and prefetch.network_threads() == threads
