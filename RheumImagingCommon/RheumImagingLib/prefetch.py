"""Work on other images beside this image's networks.

A scoring loop spends most of an image in ONNX Runtime, whose threads leave the cores idle part of the time.

- :func:`ahead`: a radiograph's texture fold ran 1.73x faster on 2 threads than on 1 (14 % of both cores idle). A
  worker thread at the scheduler's idle priority uses that time for the next image's reading (and whatever else
  ``prepare`` does, such as the radiograph's orientation), so the loop finds it ready: 3-4 ms of a 110 ms hand on
  2 cores (docs/benchmarks.md), more where cores are spare. At idle priority it takes no time from the networks.
- :func:`concurrently`: the ultrasound network gains little from a second thread in one call (ONNX Runtime 1.2x),
  and its image's reading, blending and measures take over half as long as the network, much of it in Python. Two
  images at a time, each network call in half the cores (:func:`network_threads`), the two images' work
  interleaved: on 2 cores 16.6 against 27.6 ms an image with ONNX Runtime, 25.9 against 32.2 with eager PyTorch
  (docs/benchmarks.md).
"""

from __future__ import annotations

import collections
import itertools
import os
from concurrent.futures import ThreadPoolExecutor


def _idle_priority() -> None:
    """This thread at Linux's SCHED_IDLE (it runs only on a core nothing else wants); elsewhere unchanged."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def ahead(prepare, items):
    """``(item, prepared, error)`` for each of ``items`` in order: ``prepared`` is ``prepare(item)`` (None when it
    raised ``error``, which the caller handles for that item as if it had called ``prepare`` itself). Item k+1 is
    prepared in a worker thread while the caller works on item k."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch", initializer=_idle_priority) as worker:
        pending = worker.submit(prepare, items[0])
        for k, item in enumerate(items):
            try:
                prepared, error = pending.result(), None
            except Exception as exc:  # noqa: BLE001 (the caller's to handle, for this item)
                prepared, error = None, exc
            if k + 1 < len(items):
                pending = worker.submit(prepare, items[k + 1])
            yield item, prepared, error


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def network_threads() -> int:
    """Threads for each of two network calls that run at once: half the cores."""
    return max(1, cores() // 2)


def concurrently(work, items, width: int = 2):
    """``(item, result, error)`` for each of ``items`` in order: ``result`` is ``work(item)`` (None when it raised
    ``error``, which the caller handles for that item as if it had called ``work`` itself). ``width`` items are
    worked on at once, each in its own thread, and no more are started than that (memory stays flat in the number of
    items); ``width`` 1 works in the caller's thread. ``work`` must be safe to run in ``width`` threads at once."""
    items = iter(items)
    if width <= 1:
        for item in items:
            try:
                yield item, work(item), None
            except Exception as exc:  # noqa: BLE001 (the caller's to handle, for this item)
                yield item, None, exc
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="image") as workers:
        pending = collections.deque((item, workers.submit(work, item)) for item in itertools.islice(items, width))
        while pending:
            item, future = pending.popleft()
            try:
                result, error = future.result(), None
            except Exception as exc:  # noqa: BLE001 (the caller's to handle, for this item)
                result, error = None, exc
            pending.extend((following, workers.submit(work, following)) for following in itertools.islice(items, 1))
            yield item, result, error
