"""bioimage.io model packages as model files: ``ernet-infer --model package.zip``.

A package made by ``ernet-export --bioimageio`` holds our ONNX graph with a softmax
appended (output ``probabilities``) and our model description. The runtime runs that
graph and takes the log of its probabilities as logits: the same classes, and the same
blending of tiles, since log-softmax differs from the logits by one value per pixel,
equal for every class. The package's description (``rdf.yaml``) is checked first:
a model description, every file it names present and unchanged (its sha256), ONNX
weights, and preprocessing that is the model's own normalisation. A package this
runtime cannot honour is refused, naming what is missing. The ONNX weights are
extracted once into the cache, under the package's hash.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelError, OutputError, first_line
from .io.files import atomic_output, file_sha256
from .preprocess import Normalization

#: Names a package's description may have (``bioimageio.yaml`` in newer packages).
DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")


def is_package(path: Path) -> bool:
    """Whether ``path`` is a zip holding a bioimage.io description."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name in archive.namelist() for name in DESCRIPTION_NAMES)
    except (OSError, zipfile.BadZipFile):
        return False


def open_package(path: Path, cache: Path) -> tuple[Path, Normalization]:
    """The ONNX weights of the package ``path``, checked and extracted under ``cache``,
    and the normalisation its preprocessing describes; ModelError naming the package
    and the problem otherwise."""
    digest = file_sha256(path)
    try:
        with zipfile.ZipFile(path) as archive:
            description = _description(path, archive)
            source = _onnx_source(path, description)
            normalization = _normalization(path, description)
            for name, sha256 in _files(description):
                _check_member(path, archive, name, sha256)
            target = cache / "packages" / digest[:16] / Path(source).name
            if not target.is_file():
                try:
                    with atomic_output(target) as tmp:
                        tmp.write_bytes(archive.read(source))
                except (OSError, OutputError) as exc:
                    raise ModelError(
                        f"{path}: cannot extract its weights under {cache} ({first_line(exc)}); "
                        "set $ERNET_CACHE"
                    ) from None
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{path}: not a readable zip ({first_line(exc)})") from None
    return target, normalization


def check_normalization(path: Path, found: Normalization, expected: Normalization) -> None:
    """ModelError unless the package's preprocessing (``found``) is its model's own
    normalisation (``expected``), but for a noise floor, which bioimage.io's operations
    cannot express (the runtime applies the model's)."""
    same = found.mode == expected.mode and found.clip == expected.clip
    if found.mode == "percentile":
        same = same and (found.low, found.high) == (expected.low, expected.high)
    else:
        same = same and abs(found.scale - expected.scale) <= 1e-9 * expected.scale
    if not same:
        raise ModelError(
            f"{path}: its preprocessing ({found}) is not the normalisation its model was trained with "
            f"({expected})"
        )


def _normalization(path: Path, description: dict[str, Any]) -> Normalization:
    """The normalisation that the package's preprocessing describes."""
    (tensor,) = description["inputs"]
    steps = {step.get("id"): step.get("kwargs", {}) for step in tensor.get("preprocessing") or []}
    unknown = set(steps) - {"scale_range", "scale_linear", "clip", "ensure_dtype"}
    if unknown:
        raise ModelError(
            f"{path}: preprocessing {sorted(unknown)[0]!r} is not a normalisation this runtime has"
        )
    clip = "clip" in steps and steps["clip"].get("min") == 0.0 and steps["clip"].get("max") == 1.0
    if "scale_range" in steps:
        kwargs = steps["scale_range"]
        low, high = float(kwargs.get("min_percentile", 0.0)), float(kwargs.get("max_percentile", 100.0))
        return Normalization("percentile", low=low, high=high, clip=clip)
    if "scale_linear" in steps and steps["scale_linear"].get("offset", 0.0) == 0.0:
        return Normalization("scale", scale=1.0 / float(steps["scale_linear"]["gain"]), clip=clip)
    raise ModelError(f"{path}: its preprocessing is not a normalisation this runtime has ({sorted(steps)})")


def _description(path: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    name = next((n for n in DESCRIPTION_NAMES if n in archive.namelist()), None)
    if name is None:
        raise ModelError(
            f"{path}: a zip without a bioimage.io description ({' or '.join(DESCRIPTION_NAMES)})"
        )
    try:
        description = yaml.safe_load(archive.read(name))
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: its {name} is not valid YAML ({first_line(exc)})") from None
    if not isinstance(description, dict) or description.get("type") != "model":
        raise ModelError(f"{path}: its {name} does not describe a model")
    if not str(description.get("format_version", "")).startswith("0.5."):
        raise ModelError(
            f"{path}: model description format {description.get('format_version')!r}; this runtime reads 0.5"
        )
    if len(description.get("inputs") or []) != 1 or len(description.get("outputs") or []) != 1:
        raise ModelError(f"{path}: a model of one input and one output tensor is needed")
    return description


def _onnx_source(path: Path, description: dict[str, Any]) -> str:
    weights = description.get("weights") or {}
    onnx = weights.get("onnx")
    if not onnx or not onnx.get("source"):
        formats = ", ".join(sorted(weights)) or "none"
        raise ModelError(f"{path}: no ONNX weights (it has: {formats}); this runtime runs ONNX")
    if onnx.get("external_data"):
        raise ModelError(f"{path}: ONNX weights with external data are not supported")
    return str(onnx["source"])


def _files(description: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Each file of the package that its description names, with its recorded sha256."""
    found: list[tuple[str, str | None]] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            source = node.get("source")
            if isinstance(source, str) and "://" not in source:
                found.append((source, node.get("sha256")))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(description)
    return found


def _check_member(path: Path, archive: zipfile.ZipFile, name: str, sha256: str | None) -> None:
    if name not in archive.namelist():
        raise ModelError(f"{path}: its description names {name}, which the package does not hold")
    if sha256 is not None:
        digest = hashlib.sha256()
        with archive.open(name) as member:
            for chunk in iter(lambda: member.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise ModelError(
                f"{path}: {name} does not match the sha256 its description records "
                "(a damaged or edited package)"
            )
