"""ERNet runtime: tiled ER segmentation on ONNX Runtime or TensorRT, with no torch dependency.

The public names below are imported when first used, so that ``import ernet.runtime``
(and every command's start-up, :mod:`ernet.runtime.cli.launch`) loads nothing heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # For type checkers only; at run time __getattr__ imports each name when first used.
    from .arrays import ArraySegmentation, Cancelled, segment_array, segment_array_steps  # noqa: F401
    from .contract import ModelContract, TileSpec  # noqa: F401
    from .errors import ErnetError  # noqa: F401
    from .metadata import ArchitectureSpec, ModelMetadata  # noqa: F401
    from .models import DEFAULT_MODEL  # noqa: F401
    from .postprocess import Prediction  # noqa: F401
    from .preprocess import Normalization  # noqa: F401
    from .segmenter import Segmenter  # noqa: F401
    from .spec import RunSpec  # noqa: F401
    from .stream import FrameStream, StreamResult, StreamStats  # noqa: F401

#: Each public name and the module that defines it.
_HOMES = {
    "ArraySegmentation": "arrays",
    "Cancelled": "arrays",
    "segment_array": "arrays",
    "segment_array_steps": "arrays",
    "ModelContract": "contract",
    "TileSpec": "contract",
    "ErnetError": "errors",
    "ArchitectureSpec": "metadata",
    "ModelMetadata": "metadata",
    "DEFAULT_MODEL": "models",
    "Prediction": "postprocess",
    "Normalization": "preprocess",
    "Segmenter": "segmenter",
    "RunSpec": "spec",
    "FrameStream": "stream",
    "StreamResult": "stream",
    "StreamStats": "stream",
}

__all__ = sorted([*_HOMES, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("ernet")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0+unknown"
    elif name in _HOMES:
        value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
