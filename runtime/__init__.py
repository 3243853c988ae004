"""ERNet runtime: tiled ER segmentation on ONNX Runtime or TensorRT, with no torch dependency."""

from importlib.metadata import PackageNotFoundError, version

from .arrays import ArraySegmentation, Cancelled, segment_array
from .contract import ModelContract, TileSpec
from .errors import ErnetError
from .metadata import ArchitectureSpec, ModelMetadata
from .models import DEFAULT_MODEL
from .postprocess import Prediction
from .preprocess import Normalization
from .segmenter import Segmenter
from .spec import RunSpec
from .stream import FrameStream, StreamResult, StreamStats

try:
    __version__ = version("ernet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_MODEL",
    "ArchitectureSpec",
    "ArraySegmentation",
    "Cancelled",
    "ErnetError",
    "FrameStream",
    "ModelContract",
    "ModelMetadata",
    "Normalization",
    "Prediction",
    "RunSpec",
    "Segmenter",
    "StreamResult",
    "StreamStats",
    "TileSpec",
    "__version__",
    "segment_array",
]
