"""The models embedded in the package, by name.

``default`` segments ER as the original ERNet's labels do (the tubular network is ER);
``default-4class`` gives ERnet-v2's classes (background, tubule, sheet, SBT). Each
``NAME.onnx`` has its model card ``NAME.md`` beside it. Wherever a model path is
taken, an embedded model's name may stand for it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

HERE = Path(__file__).parent
#: The names of the embedded models (their cards say what each is).
EMBEDDED = ("default", "default-4class")
#: Where an install carries its default model.
DEFAULT_MODEL = HERE / "default.onnx"


def embedded_model(name: str) -> Path:
    """The file of the embedded model ``name``; ModelError if this install lacks it."""
    path = HERE / f"{name}.onnx"
    if name not in EMBEDDED or not path.is_file():
        raise ModelError(
            f"{path}: no embedded model {name!r} in this install; pass --model MODEL.onnx"
            if name in EMBEDDED
            else f"{name}: no such model file, nor an embedded model ({', '.join(EMBEDDED)})"
        )
    return path


def model_card(name: str) -> Path:
    """The model card (Markdown) of the embedded model ``name``."""
    return embedded_model(name).with_suffix(".md")


def resolve_model(model: Path) -> Path:
    """``model`` itself, unless no such file exists and it is an embedded model's name."""
    if str(model) in EMBEDDED and not model.exists():
        return embedded_model(str(model))
    return model


def default_model_path() -> Path:
    """The model embedded in the package as its default; ModelError if this install has none."""
    return embedded_model("default")
