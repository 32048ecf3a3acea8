"""Transforms the configs cannot express with MONAI's own.

``LabelsFromLogitsd``: label maps from network logits, as ``AsDiscreted(argmax=True)`` makes them, faster on CPU.
``torch.max(dim=0).indices`` is the argmax (the first maximum on ties, as ``torch.argmax``) but runs about 8x
faster over the channel dimension on CPU with torch 2.13 (1.6 ms against 13 ms for 4 x 256 x 256 logits), which
was an eighth of scoring one ultrasound image.

``Frame2Dd``: one 2-D frame in MONAI's x-first convention from whatever file was loaded: a NIfTI/NRRD volume
with one slice (as Slicer's MONAI Label client uploads a 2-D image, ``[C, X, Y, 1]``) loses its slice axis, and a
``.npy`` array, which numpy indexes (rows, columns), is transposed to (x, y) as MONAI's PNG, NIfTI and ITK readers
give them.
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

#: Array files indexed (rows, columns), as SlicerRheumImaging prepares training images.
ROWS_FIRST_SUFFIXES = (".npy", ".npz")


class LabelsFromLogitsd(MapTransform):
    """Replace each ``keys`` item, channel-first logits (C, ...), by its label map (1, ...) as float32."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = torch.as_tensor(d[key]).max(dim=0, keepdim=True).indices.to(torch.float32)
        return d


class Frame2Dd(MapTransform):
    """Make each ``keys`` item (channel first) a 2-D frame ``[C, X, Y]``; anything else is an error naming it."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            while image.ndim > 3 and image.shape[-1] == 1:
                image = image[..., 0]
            if image.ndim != 3:
                raise ValueError(f"{_source(image)}: expected one 2-D image, got {key} of shape {tuple(image.shape)}")
            if _source(image).lower().endswith(ROWS_FIRST_SUFFIXES):
                image = image.transpose(1, 2)
            d[key] = image
        return d


def _source(image) -> str:
    meta = getattr(image, "meta", None) or {}
    return str(meta.get("filename_or_obj", "image"))
