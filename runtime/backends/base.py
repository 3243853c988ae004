"""The one protocol every execution backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..metadata import ModelMetadata


class Backend(Protocol):
    """Runs an ERNet model on float32 N x C x H x W batches, returning N x K x H x W logits."""

    #: The model description read from the artefact.
    metadata: ModelMetadata
    #: What actually executes, e.g. ``"onnxruntime/CPUExecutionProvider"``.
    description: str
    #: Faster providers that were asked for or tried first, and why each could not run.
    fallbacks: list[tuple[str, str]]

    def run(self, batch: np.ndarray) -> np.ndarray: ...
