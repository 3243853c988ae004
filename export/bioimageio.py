"""A bioimage.io model package (model description format 0.5) of an exported model.

The package runs without our code in bioimageio.core and the tools built on the
bioimage.io specification (deepImageJ in Fiji, ilastik, QuPath, napari): it holds

- ONNX weights: our fp32 graph with a softmax appended (output ``probabilities``,
  per class, in [0, 1]), still carrying our model description, so that ``ernet-infer
  --model package.zip`` runs it too; and, where torch is installed, TorchScript
  weights of the same network and softmax, checked against the ONNX weights;
- the normalisation in the specification's own operations (:func:`preprocessing`):
  percentiles of each sample over y and x (``scale_range``), then ``clip`` to [0, 1];
  the one difference from ours is ``scale_range``'s epsilon (1e-6 added to the
  intensity range), far below float32 precision for real intensity ranges;
- test tensors made by our runtime (a generated frame and the probabilities it
  returns for it, one tile over the whole frame), a cover (the frame and its overlay),
  the model card as documentation, the ERNet paper's citation, licence and tags.

The package is written only if the specification library validates it and
bioimageio.core's dynamic test (the weights run on the test input, compared with the
test output) passes. Needs the ``bioimageio`` extra (bioimageio.core without its
``onnx`` extra: ONNX Runtime is ours already).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import yaml
from onnx import helper, numpy_helper

from ernet.runtime import ModelMetadata, Normalization, RunSpec, Segmenter
from ernet.runtime.backends import read_onnx_metadata
from ernet.runtime.backends.base import OUTPUT_NAME, PROBABILITIES_NAME
from ernet.runtime.errors import ErnetError
from ernet.runtime.evaluation import LabelledFrames
from ernet.runtime.evaluation.scores import foreground_scores, in_label_classes
from ernet.runtime.io import atomic_output, refuse_existing
from ernet.runtime.postprocess import overlay
from ernet.training.synthetic import SyntheticConfig, generate

#: The bioimage.io model description format written.
FORMAT_VERSION = "0.5.12"
#: Side and first generator seed of the sample frame behind the test tensors and the cover,
#: and how many seeds on to look for one on which a model's noise floor does not bind.
SAMPLE_SIDE, SAMPLE_SEED, SAMPLE_SEEDS = 256, 4242, 64
#: Each weights format and the devices bioimageio.core tests it on (for ONNX, the CPU
#: provider alone: it would try every provider onnxruntime-gpu lists, noisily).
TESTED_ON: tuple[tuple[Literal["onnx", "torchscript"], list[str]], ...] = (
    ("onnx", ["CPUExecutionProvider"]),
    ("torchscript", ["cpu"]),
)
#: Largest |TorchScript - ONNX| probability difference accepted on the test input.
TORCHSCRIPT_ATOL = 1e-4
PAPER = {
    "text": "Lu M, van Tartwijk FW, Lin JQ, et al. The structure and global distribution of the "
    "endoplasmic reticulum network are actively regulated by lysosomes. Science Advances 6 (2020).",
    "doi": "10.1126/sciadv.abc7209",
}
TAGS = (
    "endoplasmic-reticulum",
    "segmentation",
    "semantic-segmentation",
    "fluorescence-light-microscopy",
    "2d",
    "onnx",
    "ernet",
)


class PackageError(ErnetError):
    """The package did not validate or did not reproduce its test output."""


def require_bioimageio_libraries() -> None:
    """ImportError (naming the module) unless the ``bioimageio`` extra is installed."""
    import bioimageio.core  # noqa: F401
    import bioimageio.spec  # noqa: F401


def probabilities_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of an exported graph whose output is the softmax over classes of its logits,
    named ``probabilities``; its metadata is kept."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    (logits,) = out.graph.output
    if logits.name != OUTPUT_NAME:
        raise ValueError(f"expected the graph's output {OUTPUT_NAME!r}, found {logits.name!r}")
    probabilities = onnx.ValueInfoProto()
    probabilities.CopyFrom(logits)
    probabilities.name = PROBABILITIES_NAME
    out.graph.node.append(helper.make_node("Softmax", [OUTPUT_NAME], [PROBABILITIES_NAME], axis=1))
    del out.graph.output[:]
    out.graph.output.append(probabilities)
    onnx.checker.check_model(out, full_check=True)
    return out


def preprocessing(normalization: Normalization) -> list[dict[str, Any]]:
    """Our normalisation as bioimage.io preprocessing operations (per sample); a noise
    floor has no such operation and is left out (:func:`sample_frame` picks a test frame
    on which it does not bind)."""
    if normalization.mode == "percentile":
        steps: list[dict[str, Any]] = [
            {
                "id": "scale_range",
                "kwargs": {
                    "axes": ["y", "x"],
                    "min_percentile": normalization.low,
                    "max_percentile": normalization.high,
                },
            }
        ]
    else:
        steps = [{"id": "scale_linear", "kwargs": {"gain": 1.0 / normalization.scale, "offset": 0.0}}]
    if normalization.clip:
        steps.append({"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}})
    return steps


def sample_frame(multiple_of: int, normalization: Normalization) -> np.ndarray:
    """The generated frame of the test tensors, float32 (what bioimage.io tools feed in):
    the first from :data:`SAMPLE_SEED` on whose intensity range the ``normalization``'s
    noise floor does not bind, so that the package's preprocessing, which leaves the floor
    out, prepares it as our runtime does."""
    side = -(-SAMPLE_SIDE // multiple_of) * multiple_of
    config = SyntheticConfig(height=side, width=side)
    for seed in range(SAMPLE_SEED, SAMPLE_SEED + SAMPLE_SEEDS):
        frame = generate(seed, config).image.astype(np.float32)
        if normalization.mode != "percentile" or normalization.value_range(
            frame
        ) == normalization.percentiles(frame):
            return frame
    raise PackageError(
        f"no generated frame within {SAMPLE_SEEDS} seeds spans the model's noise floor of "
        f"{normalization.noise_floor:g} noise levels: no test frame for the package"
    )


def torchscript_of(onnx_path: Path, metadata: ModelMetadata, checkpoint: Path | None) -> Any:
    """The network and softmax traced to TorchScript: from ``checkpoint``, else rebuilt from
    the ONNX file's weights (exported graphs keep the PyTorch parameter names)."""
    import torch

    from ernet.training.checkpoint import load_checkpoint
    from ernet.training.models import build_model

    if checkpoint is not None:
        network = load_checkpoint(checkpoint).model
    else:
        network = build_model(metadata.architecture, metadata.contract)
        weights = {
            t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in onnx.load(onnx_path).graph.initializer
        }
        missing = set(network.state_dict()) - set(weights)
        if missing:
            raise PackageError(
                f"{onnx_path}: its weights do not name the network's parameters (e.g. {sorted(missing)[0]}); "
                "package the checkpoint instead"
            )
        network.load_state_dict({k: weights[k] for k in network.state_dict()})
    model = torch.nn.Sequential(network.eval(), torch.nn.Softmax(dim=1)).eval()
    side = max(64, metadata.contract.tiles.multiple_of)
    example = torch.zeros(1, metadata.contract.in_channels, side, side)
    with torch.no_grad():
        return torch.jit.trace(model, example, check_trace=False)


def measured_accuracy(onnx_path: Path, real: LabelledFrames | None) -> str | None:
    """IoU of the model's ER (its network classes; its foreground without them) on
    labelled real frames (as ``ernet-infer`` runs it by default on the CPU), as a line for
    the model card; None without such frames."""
    if real is None or not real.frames:
        return None
    with Segmenter(RunSpec(onnx_path, "cpu")) as seg:
        classes, network = seg.contract.class_names, seg.contract.network_classes
        ious = [
            foreground_scores(in_label_classes(seg.segment(f), classes, real.class_names, network), t)["iou"]
            for f, t in zip(real.frames, real.labels, strict=True)
        ]
    each = ", ".join(f"{iou:.3f}" for iou in ious)
    scored = "ER" if network is None else "ER network (" + ", ".join(classes[k] for k in network) + ")"
    return (
        f"- Measured by ernet-export on {len(ious)} hand-labelled frames, {real.name}: {scored} "
        f"IoU {np.mean(ious):.3f} on average ({each})."
    )


def model_card(metadata: ModelMetadata, source: Path, accuracy: str | None = None) -> str:
    """The documentation page: what the model is, how it was made, how to use it, its
    limits, and its ``accuracy`` on real frames where measured."""
    contract, provenance = metadata.contract, metadata.provenance
    training = provenance.get("training", {})
    validation = provenance.get("validation", {})
    norm = contract.normalization
    normalisation = (
        f"the {norm.low:g}th-{norm.high:g}th percentiles of each frame map to 0 and 1"
        + (", clipped to [0, 1]" if norm.clip else "")
        if norm.mode == "percentile"
        else f"intensities divided by {norm.scale:g}" + (", clipped to [0, 1]" if norm.clip else "")
    )
    scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(validation.items()) if isinstance(v, float))
    lines = [
        f"# ERNet: {', '.join(contract.class_names[1:])} segmentation of fluorescence ER images",
        "",
        "A residual network (RCAN-style residual groups of residual blocks with channel attention,"
        " no downsampling) that labels each pixel of a fluorescence image of the endoplasmic"
        " reticulum (ER), after ERNet (Lu et al., Science Advances 2020).",
        "",
        "## Model",
        "",
        f"- Architecture: {metadata.architecture.name} {metadata.architecture.config}",
        f"- Input: {contract.in_channels} channel(s), any height and width"
        + (f" (multiples of {contract.tiles.multiple_of})" if contract.tiles.multiple_of > 1 else "")
        + f"; normalisation: {normalisation} (the package's preprocessing).",
        *(
            [
                f"- Noise floor: our runtime widens each frame's range to at least {norm.noise_floor:g}"
                " times its noise level (estimated from neighbouring pixels), so that noise is not"
                " stretched into contrast. bioimage.io has no such operation: tools that run this"
                " package stretch frames of noise alone to full contrast, and the model may then call"
                " noise ER; `ernet-infer --model PACKAGE` applies the floor."
            ]
            if norm.noise_floor
            else []
        ),
        f"- Output: per-class probabilities (softmax), channels {', '.join(contract.class_names)};"
        " the class of a pixel is the channel of highest probability.",
        *(
            [
                f"- Speckle: `ernet-infer` masks drop foreground pieces under {contract.min_object_size}"
                " px (8-connected), the model's minimum object size; the probabilities here keep them."
            ]
            if contract.min_object_size
            else []
        ),
        f"- Made from `{source.name}` by ernet-export (package version {metadata.package_version}).",
        "",
        "## Training",
        "",
        (
            f"- {training.get('epochs', '?')} epochs of {training.get('steps_per_epoch', '?')} steps,"
            f" batch {training.get('batch_size', '?')}, crops of {training.get('crop', '?')} px, seed"
            f" {training.get('seed', '?')}, on {provenance.get('data', {}).get('source', 'unrecorded data')}."
            if training
            else "- Training is not recorded in this model's metadata."
        ),
        f"- Validation in training: {scores}." if scores else "- Validation scores are not recorded.",
        accuracy or "- Not measured on labelled real frames.",
        "",
        "## Intended use and limits",
        "",
        "- 2-D frames (or each frame of a stack) of fluorescently labelled ER, at the pixel sizes"
        " of the training data; other structures and modalities are out of scope.",
        "- Channel attention pools over the whole input, so tiling changes the output slightly;"
        " run whole frames where memory allows.",
        "- Trained on generated data where so recorded: check it on your own labelled frames"
        " (`ernet-validate`) before drawing conclusions.",
        "",
        "## Citation",
        "",
        f"{PAPER['text']} doi:{PAPER['doi']}",
        "",
    ]
    return "\n".join(lines)


def _cover(frame: np.ndarray, labels: np.ndarray, normalization: Normalization, path: Path) -> None:
    """The frame and its overlay side by side (the 2:1 cover bioimage.io asks for)."""
    from PIL import Image

    grey = normalization.apply(frame)
    both = np.concatenate([overlay(grey, np.zeros_like(labels)), overlay(grey, labels)], axis=1)
    Image.fromarray(both).save(path)


def _rdf(metadata: ModelMetadata, name: str, opset: int, torchscript: bool) -> dict[str, Any]:
    contract = metadata.contract
    m = contract.tiles.multiple_of
    space = [{"type": "space", "id": axis, "size": {"min": m, "step": m}} for axis in ("y", "x")]
    weights: dict[str, Any] = {"onnx": {"source": "model.onnx", "opset_version": opset}}
    if torchscript:
        weights["torchscript"] = {
            "source": "model.torchscript.pt",
            "pytorch_version": version("torch"),
            "parent": "onnx",
        }
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": (
            f"ERNet segmentation of fluorescence endoplasmic-reticulum images into "
            f"{', '.join(contract.class_names)} (per-class probabilities)."
        ),
        "authors": [{"name": "ERNet deploy contributors"}],
        "cite": [PAPER],
        "license": "BSD-3-Clause",
        "tags": list(TAGS),
        "documentation": {"source": "README.md"},
        "covers": [{"source": "cover.png"}],
        "version": metadata.package_version or "0.1.0",
        "inputs": [
            {
                "id": "raw",
                "description": "fluorescence intensities, any range",
                "axes": [
                    {"type": "batch"},
                    {
                        "type": "channel",
                        "channel_names": [f"channel{i}" for i in range(contract.in_channels)],
                    },
                    *space,
                ],
                "test_tensor": {"source": "test_input.npy"},
                "data": {"type": "float32"},
                "preprocessing": preprocessing(contract.normalization),
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "description": f"per-class probabilities: {', '.join(contract.class_names)}",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": list(contract.class_names)},
                    *(
                        {"type": "space", "id": axis, "size": {"tensor_id": "raw", "axis_id": axis}}
                        for axis in ("y", "x")
                    ),
                ],
                "test_tensor": {"source": "test_output.npy"},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": weights,
    }


def write_package(
    onnx_path: Path,
    output: Path,
    *,
    checkpoint: Path | None = None,
    real: LabelledFrames | None = None,
    name: str | None = None,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Package the exported fp32 model ``onnx_path`` (and its ``checkpoint``, for the
    TorchScript weights) as the bioimage.io zip ``output``, validated and tested first;
    its model card reports the accuracy on the ``real`` labelled frames, if given."""
    require_bioimageio_libraries()
    from bioimageio.core import test_model
    from bioimageio.spec import InvalidDescr, load_description, save_bioimageio_package

    refuse_existing(output, overwrite)
    metadata = read_onnx_metadata(onnx_path)
    if metadata.contract.normalization.levels:
        raise PackageError(
            f"{onnx_path}: its preprocessing truncates to {metadata.contract.normalization.levels + 1} "
            "levels (ERnet-v2's 8 bits), which bioimage.io's operations cannot express: no package made"
        )
    model = onnx.load(onnx_path)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    floor = metadata.contract.normalization.noise_floor
    if floor:
        echo(
            f"note: the model's noise floor ({floor:g} noise levels) has no bioimage.io operation: "
            "the package's preprocessing leaves it out (ernet-infer --model PACKAGE applies it)"
        )
    frame = sample_frame(metadata.contract.tiles.multiple_of, metadata.contract.normalization)
    with Segmenter(RunSpec(onnx_path, "cpu", tile=frame.shape[0])) as seg:  # one tile: the whole frame
        prediction = seg.predict(frame, probabilities="float32")
    assert prediction.probabilities is not None
    expected = prediction.probabilities[None]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx.save_model(probabilities_graph(model), folder / "model.onnx")
        np.save(folder / "test_input.npy", frame[None, None])
        np.save(folder / "test_output.npy", expected)
        _cover(frame, prediction.labels, metadata.contract.normalization, folder / "cover.png")
        accuracy = measured_accuracy(onnx_path, real)
        (folder / "README.md").write_text(model_card(metadata, checkpoint or onnx_path, accuracy))
        torchscript = _write_torchscript(onnx_path, metadata, checkpoint, frame, expected, folder, echo)
        rdf = _rdf(metadata, name or _name(output), opset, torchscript)
        (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
        descr = load_description(folder / "rdf.yaml", format_version=FORMAT_VERSION)
        if isinstance(descr, InvalidDescr):
            raise PackageError(f"{output}: the package does not validate: {_first_error(descr)}")
        packaged = folder / "package.zip"
        save_bioimageio_package(descr, output_path=packaged)
        for weights, devices in TESTED_ON[: 2 if torchscript else 1]:
            summary = test_model(packaged, weight_format=weights, devices=devices)
            if summary.status != "passed":
                reason = _first_error(summary)
                raise PackageError(
                    f"{output}: bioimageio.core's test of its {weights} weights fails: {reason}"
                )
        with atomic_output(output, replace=overwrite) as tmp_output:
            shutil.copyfile(packaged, tmp_output)
    formats = "ONNX and TorchScript" if torchscript else "ONNX"
    echo(f"{output}: bioimage.io package ({formats} weights) validated and tested by bioimageio.core")


def _write_torchscript(
    onnx_path: Path,
    metadata: ModelMetadata,
    checkpoint: Path | None,
    frame: np.ndarray,
    expected: np.ndarray,
    folder: Path,
    echo: Callable[[str], None],
) -> bool:
    """Write ``model.torchscript.pt`` into ``folder`` if torch is installed and the weights
    agree with the ONNX weights on the test input; whether it was written."""
    try:
        import torch
    except ImportError:
        echo("note: no TorchScript weights: torch is not installed")
        return False
    scripted = torchscript_of(onnx_path, metadata, checkpoint)
    image = metadata.contract.normalization.apply(frame)
    with torch.no_grad():
        probabilities = scripted(torch.from_numpy(image)[None, None]).numpy()
    difference = float(np.abs(probabilities - expected).max())
    if difference > TORCHSCRIPT_ATOL:
        raise PackageError(
            f"{onnx_path}: TorchScript and ONNX weights differ by {difference:.2e} on the test input "
            f"(at most {TORCHSCRIPT_ATOL:g})"
        )
    scripted.save(str(folder / "model.torchscript.pt"))
    echo(f"TorchScript weights: max |dp| {difference:.2e} against ONNX on the test input")
    return True


def _name(output: Path) -> str:
    """The package's name from its file's: ``ernet-default.bioimageio.zip`` ->
    ``ERNet ER segmentation (ernet-default)``, in the characters bioimage.io names allow."""
    label = re.sub(r"[^A-Za-z0-9_+\- ]", "-", output.name.split(".")[0]) or "model"
    return f"ERNet ER segmentation ({label})"


def _first_error(result: Any) -> str:
    """The first error of a validation summary (or of an invalid description's)."""
    summary = getattr(result, "validation_summary", result)
    for detail in summary.details:
        for error in detail.errors:
            return f"{'.'.join(map(str, error.loc))}: {error.msg}" if error.loc else error.msg
        if detail.status == "failed":
            return detail.name
    return summary.status
