"""ERNet runtime: tiled ER segmentation on ONNX Runtime, with no torch dependency."""

from importlib.metadata import PackageNotFoundError, version

from .errors import ErnetError
from .metadata import ModelConfig, ModelMetadata
from .preprocess import Normalization
from .segmenter import Prediction, Segmenter
from .stream import FrameStream, StreamResult, StreamStats

try:
    __version__ = version("ernet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ErnetError",
    "FrameStream",
    "ModelConfig",
    "ModelMetadata",
    "Normalization",
    "Prediction",
    "Segmenter",
    "StreamResult",
    "StreamStats",
    "__version__",
]
