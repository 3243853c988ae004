"""``make export``: every deployable artefact from one checkpoint, each checked before
it is written, each with its report (JSON) beside it.

``model.onnx`` (fp32, checked against PyTorch) is the reference; ``model.fp16.onnx``
and ``model.int8.onnx`` are derived from it and checked against it; a TensorRT
engine is built from the fp16 model where TensorRT and a GPU are present. An
exported fp32 model (e.g. the embedded default) can stand in for the checkpoint.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ernet.runtime import RunSpec
from ernet.runtime.backends import read_onnx_metadata
from ernet.runtime.backends.trt_engine import build_or_load_engine, tensorrt_unavailable_reason
from ernet.runtime.errors import ModelError
from ernet.runtime.evaluation import LabelledFrames, labelled_frames
from ernet.runtime.io import atomic_output, file_sha256, refuse_existing
from ernet.runtime.metadata import ModelMetadata
from ernet.training.models import get_architecture
from ernet.training.synthetic import SyntheticConfig, generate

from .exporter import ParityError, ParityResult, export_checkpoint
from .precision import quantize_int8, to_fp16, variant_metadata, with_metadata
from .verify import VariantReport, check_variant, generated_frames

VARIANTS = ("fp16", "int8")
#: Generator seeds of the int8 calibration frames (distinct from the check frames).
CALIBRATION_SEEDS = range(8000, 8016)


def variant_path(model: Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx``; fp32 is ``model`` itself."""
    return model if precision == "fp32" else model.with_name(f"{model.stem}.{precision}{model.suffix}")


def report_path(artefact: Path) -> Path:
    """Where the check report of ``artefact`` is saved: ``model.fp16.onnx`` -> ``model.fp16.parity.json``."""
    return artefact.with_name(f"{artefact.stem}.parity.json")


def _save_json(path: Path, values: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(values, indent=2) + "\n")


def calibration_frames(metadata: ModelMetadata) -> Iterator[np.ndarray]:
    """Normalised C x H x W tiles from the synthetic generator, for int8 calibration."""
    size = metadata.contract.tiles.size
    for seed in CALIBRATION_SEEDS:
        image = generate(seed, SyntheticConfig(height=size, width=size)).image
        yield metadata.contract.normalization.apply(image)[None]


def fp16_variant(reference: Path) -> onnx.ModelProto:
    """The fp16 graph of an fp32 model, by its architecture's fp16 policy."""
    name = read_onnx_metadata(reference).architecture.name
    policy = get_architecture(name).fp16
    if policy is None:
        raise ModelError(f"{reference}: architecture {name} has no fp16 policy; export without fp16")
    return to_fp16(onnx.load(reference), policy)


def write_variant(
    reference: Path,
    precision: str,
    datasets: list[LabelledFrames],
    write: Callable[[Path], None],
) -> VariantReport:
    """Write a variant through ``write`` into a temporary file, check it, keep it if it passes."""
    output = variant_path(reference, precision)
    metadata = variant_metadata(read_onnx_metadata(reference), precision, file_sha256(reference))
    with atomic_output(output) as tmp:
        write(tmp)
        onnx.save_model(with_metadata(onnx.load(tmp), metadata), tmp)
        report = check_variant(reference, tmp, precision, datasets, output.name)
        _save_json(report_path(output), {"sha256": file_sha256(tmp), **report.to_dict()})
        if not report.passed:
            raise ParityError(f"{output}: fails its gate ({report.gate}); report in {report_path(output)}")
    return report


def _reference_from_onnx(source: Path, output: Path, echo: Callable[[str], None]) -> None:
    """Take an exported fp32 model (e.g. the embedded default) as the reference."""
    metadata = read_onnx_metadata(source)  # ModelError, naming the file, if it is not one
    if metadata.precision != "fp32":
        raise ModelError(f"{source}: an {metadata.precision} model; variants derive from an fp32 model")
    if source.resolve() != output.resolve():
        with atomic_output(output) as tmp:
            shutil.copyfile(source, tmp)
    _save_json(
        report_path(output),
        {
            "sha256": file_sha256(output),
            "reference": "ONNX model given",
            "source": str(source),
            "parity": [],
            "note": "no checkpoint given: not re-checked against PyTorch here",
        },
    )
    echo(f"{output.name} (fp32): from {source}, not re-checked against PyTorch (no checkpoint given)")


def export_all(
    checkpoint: Path,
    output: Path,
    *,
    variants: tuple[str, ...] = VARIANTS,
    engine: bool = True,
    real_data: Path | None = None,
    opset: int = 18,
    tile_size: int | None = None,
    min_object_size: int | None = None,
    bioimageio: Path | None = None,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Export ``checkpoint`` to ``output`` (fp32) and its ``variants``, then the TensorRT
    engine when ``engine`` and TensorRT can run here, and the ``bioimageio`` package of
    the fp32 model when asked; ``echo`` receives the reports.

    ``checkpoint`` may instead be an exported fp32 ``.onnx`` (e.g. the embedded
    default model): it becomes the reference as it is, and the variants derive from it.
    """
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variant {sorted(unknown)[0]!r}; choose from {', '.join(VARIANTS)}")
    from_onnx = checkpoint.suffix.lower() == ".onnx"
    if from_onnx and (tile_size is not None or min_object_size is not None):
        raise ValueError("--tile-size and --min-object-size apply to checkpoints, not to ONNX models")
    same_file = from_onnx and checkpoint.resolve() == output.resolve()
    for path in [output, *(variant_path(output, p) for p in variants)]:
        refuse_existing(path, overwrite or (same_file and path == output))
    if bioimageio is not None:
        refuse_existing(bioimageio, overwrite)
    if from_onnx:
        _reference_from_onnx(checkpoint, output, echo)
    else:
        results: list[ParityResult] = export_checkpoint(
            checkpoint,
            output,
            opset=opset,
            tile_size=tile_size,
            min_object_size=min_object_size,
            overwrite=overwrite,
        )
        _save_json(
            report_path(output),
            {
                "sha256": file_sha256(output),
                "reference": "PyTorch checkpoint",
                "checkpoint": str(checkpoint),
                "parity": [r.to_dict() for r in results],
            },
        )
        echo(f"{output.name} (fp32) vs PyTorch:")
        for result in results:
            echo(f"  {result}")
    datasets = [generated_frames(class_names=read_onnx_metadata(output).contract.class_names)]
    real = labelled_frames(real_data, f"real ({real_data})") if real_data is not None else None
    if real is not None:
        datasets.append(real)
    writers: dict[str, Callable[[Path], None]] = {
        "fp16": lambda tmp: onnx.save_model(fp16_variant(output), tmp),
        "int8": lambda tmp: quantize_int8(output, tmp, calibration_frames(read_onnx_metadata(output))),
    }
    for precision in variants:
        report = write_variant(output, precision, datasets, writers[precision])
        for line in report.lines():
            echo(line)
    if engine:
        source = variant_path(output, "fp16" if "fp16" in variants else "fp32")
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            echo(f"TensorRT engine skipped: {reason}")
        else:
            spec = RunSpec(source, "tensorrt", rebuild_engine=overwrite)
            plan, manifest = build_or_load_engine(source, spec, source.with_suffix(".plan"))
            echo(
                f"TensorRT engine {plan} ({manifest.key.precision}, inputs up to {manifest.key.profile.max})"
            )
    if bioimageio is not None:
        from .bioimageio import write_package

        checkpoint_used = None if from_onnx else checkpoint
        write_package(
            output, bioimageio, checkpoint=checkpoint_used, real=real, overwrite=overwrite, echo=echo
        )
