"""torch's intra-op threads around the small work beside the networks.

Each torch operation on more than about 32 000 elements (an image copy, a resize, an argmax, a softmax) wakes torch's
other threads and waits for them; on a busy machine that wait costs more than the operation. The scoring loops run
that work in one thread and give the networks (eager PyTorch) all of them; ONNX Runtime has its own threads.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` for the block (process-wide: the block must not overlap other torch
    work of another thread, as the scoring loops do not)."""
    import torch

    previous = torch.get_num_threads()
    if n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
