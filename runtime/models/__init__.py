"""The models embedded in the package: ``default.onnx``, used when no model is given."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

#: Where an install carries its default model.
DEFAULT_MODEL = Path(__file__).parent / "default.onnx"


def default_model_path() -> Path:
    """The model embedded in the package; ModelError if this install has none."""
    if not DEFAULT_MODEL.is_file():
        raise ModelError(
            f"{DEFAULT_MODEL}: no default model is embedded in this install; pass --model MODEL.onnx"
        )
    return DEFAULT_MODEL
