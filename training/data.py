"""Training data: image/mask folders, legacy pickled crop sets, and random crops.

Folders hold pairs named ``NAME_image.EXT`` / ``NAME_mask.EXT``, or the same
names under ``images/`` and ``masks/``. Masks hold integer class ids.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ernet.runtime.errors import InputError, first_line
from ernet.runtime.io import labelled_pairs, open_image
from ernet.runtime.preprocess import Normalization


@dataclass
class Sample:
    """One labelled frame: normalised float32 image (C x H x W) and int64 mask (H x W)."""

    name: str
    image: np.ndarray
    mask: np.ndarray


def load_samples(folder: Path, normalization: Normalization) -> list[Sample]:
    """Read and normalise every 2-D pair of ``folder`` (stacks contribute each frame)."""
    samples = []
    for pair in labelled_pairs(folder):
        image, mask = open_image(pair.image), open_image(pair.mask)
        if image.shape != mask.shape:
            raise InputError(f"{pair.mask}: shape {mask.shape} differs from image {image.shape}")
        for i, (frame, labels) in enumerate(zip(image.frames(), mask.frames(), strict=True)):
            name = pair.name + (f"[{i}]" if image.n_frames > 1 else "")
            samples.append(Sample(name, normalization.apply(frame)[None], labels.astype(np.int64)))
    return samples


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and PIL images, nothing else (no code execution)."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # arrays at pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("PIL.Image", "Image"),
        ("_codecs", "encode"),  # bytes at pickle protocol 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED or (module == "numpy" and name.startswith("dtypes")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_legacy_pickle(path: Path, normalization: Normalization) -> list[Sample]:
    """Read an original ERNet pickled crop set: a sequence of (image, mask) pairs,
    or an ``(images, masks)`` pair of sequences, of arrays or PIL images."""
    try:
        obj = _ArraysOnlyUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise InputError(f"{path}: not an admissible crop pickle ({exc})") from None
    try:
        if isinstance(obj, dict):
            obj = list(zip(obj.get("images", ()), obj.get("masks", ()), strict=True))
        elif len(obj) == 2 and len(obj[0]) == len(obj[1]) and np.asarray(obj[0][0]).ndim >= 2:
            obj = list(zip(obj[0], obj[1], strict=True))
        samples = []
        for i, (image, mask) in enumerate(obj):
            image, mask = np.asarray(image), np.asarray(mask)
            if image.ndim == 3:  # H x W x RGB crops: one channel is enough
                image = image[..., 0]
            labels = (mask[..., 0] if mask.ndim == 3 else mask).astype(np.int64)
            samples.append(Sample(f"{Path(path).stem}[{i}]", normalization.apply(image)[None], labels))
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: not a set of (image, mask) pairs ({first_line(exc)})") from None
    if not samples:
        raise InputError(f"{path}: no image/mask pairs found")
    return samples


class RandomCrops(Dataset):
    """``length`` random crops per epoch with flips, transposes and brightness jitter.

    Crop ``i`` of epoch ``e`` depends only on (seed, e, i): deterministic whatever
    the number of workers.
    """

    def __init__(self, samples: list[Sample], crop: int, length: int, seed: int = 0, augment: bool = True):
        self.samples, self.crop, self.length, self.seed, self.augment = samples, crop, length, seed, augment
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        sample = self.samples[rng.integers(len(self.samples))]
        image, mask = _pad_to(sample.image, sample.mask, self.crop)
        y = rng.integers(image.shape[1] - self.crop + 1)
        x = rng.integers(image.shape[2] - self.crop + 1)
        image = image[:, y : y + self.crop, x : x + self.crop]
        mask = mask[y : y + self.crop, x : x + self.crop]
        if self.augment:
            if rng.random() < 0.5:
                image, mask = image[:, :, ::-1], mask[:, ::-1]
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[::-1]
            if rng.random() < 0.5:
                image, mask = image.transpose(0, 2, 1), mask.T
            image = image * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
        return torch.from_numpy(np.ascontiguousarray(image, np.float32)), torch.from_numpy(
            np.ascontiguousarray(mask)
        )


def _pad_to(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    pad_h, pad_w = max(0, size - image.shape[1]), max(0, size - image.shape[2])
    if not (pad_h or pad_w):
        return image, mask
    image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    return image, np.pad(mask, ((0, pad_h), (0, pad_w)), mode="reflect")


def balanced_class_weights(samples: list[Sample], n_classes: int) -> np.ndarray:
    """Cross-entropy weights for rare classes: each class's pixel share to the power
    -1/2, scaled so that the average pixel's weight is 1 (classes absent from the
    samples get the largest weight present)."""
    counts = np.zeros(n_classes)
    for sample in samples:
        counts += np.bincount(sample.mask.ravel(), minlength=n_classes)[:n_classes]
    share = counts / max(counts.sum(), 1)
    present = share > 0
    weights = np.zeros(n_classes)
    weights[present] = share[present] ** -0.5
    weights[~present] = weights[present].max(initial=1.0)
    return weights / (share * weights).sum()
