"""A network run by an ONNX Runtime session, callable where the PyTorch module was (see ``runtime``)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import torch


class OnnxRuntimeNetwork(torch.nn.Module):
    """Called like the network it replaces: a float tensor batch in, a tensor out (on CPU).

    ``session``: an ONNX Runtime session, or the future of one still being created in the background (a bundle's
    stored graph, ``runtime.load``); if that fails, ``fallback(error)`` gives the module that runs instead."""

    def __init__(self, session, input_shape: tuple, label: str, fallback=None):
        super().__init__()
        self._session, self.input_shape, self.label = session, input_shape, label
        self._fallback, self.instead = fallback, None
        self._resolving = threading.Lock()  # two threads may call it first at once (two images scored at once)

    def running(self) -> torch.nn.Module:
        """What runs the inputs: this session once created, or the fallback module when it could not be."""
        if isinstance(self._session, Future):
            with self._resolving:
                if isinstance(self._session, Future):
                    try:
                        session = self._session.result()
                    except Exception as exc:  # noqa: BLE001 (whatever ONNX Runtime raised: the fallback decides)
                        if self._fallback is None:
                            raise
                        self.instead, session = self._fallback(exc), None
                    self._session = session
        return self if self.instead is None else self.instead

    @property
    def session(self):
        self.running()
        return self._session

    @property
    def precision(self) -> str:
        """"int8" for a graph ``runtime.store`` quantised, else "fp32"."""
        from .runtime import PRECISION

        return self.session.get_modelmeta().custom_metadata_map.get(PRECISION, "fp32")

    def forward(self, x):
        if self.running() is not self:
            return self.instead(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.label} was exported for inputs (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self._session.run(None, {"input": array})[0])
