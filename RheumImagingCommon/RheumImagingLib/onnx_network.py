"""A network run by an ONNX Runtime session, callable where the PyTorch module was (see ``runtime``)."""

from __future__ import annotations

import numpy as np
import torch


class OnnxRuntimeNetwork(torch.nn.Module):
    """Called like the network it replaces: a float tensor batch in, a tensor out (on CPU)."""

    def __init__(self, session, input_shape: tuple, label: str):
        super().__init__()
        self.session, self.input_shape, self.label = session, input_shape, label

    @property
    def precision(self) -> str:
        """"int8" for a graph ``runtime.store`` quantised, else "fp32"."""
        from .runtime import PRECISION

        return self.session.get_modelmeta().custom_metadata_map.get(PRECISION, "fp32")

    def forward(self, x):
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.label} was exported for inputs (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"input": array})[0])
