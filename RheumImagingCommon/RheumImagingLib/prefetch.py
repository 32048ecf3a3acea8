"""The next image's reading, beside this image's networks.

A scoring loop spends most of an image in ONNX Runtime, whose threads leave the cores idle part of the time (a
radiograph's texture fold ran 1.73x faster on 2 threads than on 1: 14 % of both cores idle). A worker thread at the
scheduler's idle priority uses that time for the next image's reading (and whatever else ``prepare`` does, such as
the radiograph's orientation), so the loop finds it ready: 3-4 ms of a 110 ms hand on 2 cores (docs/benchmarks.md),
more where cores are spare. At idle priority it takes no time from the networks.
"""

from __future__ import annotations

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
