"""``ernet-train`` and ``ernet-simulate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ernet.runtime.cli.policy import command, typer_app
from ernet.runtime.metadata import ERNET_ARCHITECTURE, ArchitectureSpec
from ernet.runtime.preprocess import Normalization

from .presets import PRESETS, PresetName

train_app = typer_app(extra="train")
simulate_app = typer_app()
#: ERNet's hyper-parameters behind the short options of ``ernet-train``.
ERNET_OPTIONS = {
    "features": "n_feats",
    "groups": "n_resgroups",
    "blocks": "n_resblocks",
    "reduction": "reduction",
}


def parse_options(values: list[str], option: str = "--option") -> dict[str, Any]:
    """``["window=8", "ratio=2.0"]`` -> ``{"window": 8, "ratio": 2.0}``: values as JSON, else text."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint=option)
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


@train_app.command()
@command
def train(
    data: Annotated[
        Path,
        typer.Argument(
            help="Folder of NAME_image/NAME_mask pairs (or images/ + masks/), or a legacy crop pickle."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for last.pt and best.pt.")] = Path(
        "build/train"
    ),
    val_data: Annotated[
        Path | None, typer.Option(help="Validation folder; default: hold out --val-fraction.")
    ] = None,
    preset: Annotated[
        PresetName,
        typer.Option(
            help="Recipe of the [preset] options: the embedded default model's or the published ERNet's."
        ),
    ] = "shipped",
    val_fraction: Annotated[
        float | None, typer.Option(help="Share of the samples held out for validation. [preset]")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs. [preset]")] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(help="Optimiser steps per epoch. [preset]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Crops per optimiser step. [preset]")] = None,
    crop: Annotated[
        int | None, typer.Option(help="Training crop size; recorded as the model's tile size. [preset]")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Adam's learning rate. [preset]")] = None,
    lr_step: Annotated[
        int | None, typer.Option(help="Multiply the learning rate by --lr-gamma every N epochs. [preset]")
    ] = None,
    lr_gamma: Annotated[float | None, typer.Option(help="Learning-rate decay factor. [preset]")] = None,
    architecture: Annotated[
        str, typer.Option(help="A registered architecture (ernet.training.models).")
    ] = ERNET_ARCHITECTURE,
    option: Annotated[
        list[str] | None, typer.Option(help="An architecture option, KEY=VALUE (repeatable).")
    ] = None,
    features: Annotated[int | None, typer.Option(help="ERNet's F: feature channels. [preset]")] = None,
    groups: Annotated[int | None, typer.Option(help="ERNet's G: residual groups. [preset]")] = None,
    blocks: Annotated[int | None, typer.Option(help="ERNet's B: blocks per group. [preset]")] = None,
    reduction: Annotated[
        int | None, typer.Option(help="ERNet's r: channel-attention reduction. [preset]")
    ] = None,
    classes: Annotated[str, typer.Option(help="Comma-separated class names, id 0 first.")] = "background,ER",
    network_classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated classes that form the ER network (its graph; the ER of binary labels); "
            "default: every class but the background."
        ),
    ] = None,
    class_weights: Annotated[
        Literal["none", "balanced"],
        typer.Option(
            help="Cross-entropy class weights: none, or balanced (each class's pixel share to the power "
            "-1/2: rare classes such as SBT weigh more)."
        ),
    ] = "none",
    normalization: Annotated[
        Literal["percentile", "scale", "ernet-v2"],
        typer.Option(
            help="percentile: 1-99 % of each frame to 0-1; scale: value / 255 (the original ERNet); "
            "ernet-v2: percentile, then truncated to 8 bits (ERnet-v2's)."
        ),
    ] = "percentile",
    noise_floor: Annotated[
        float,
        typer.Option(
            min=0,
            help="percentile: widen a frame's range to at least this many noise levels, so that "
            "noise is not stretched into contrast (0: off).",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of weights, crops and the validation split.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(help="Data-loader worker processes.")] = 0,
    resume: Annotated[Path | None, typer.Option(help="Continue from this checkpoint (last.pt).")] = None,
    quiet: Annotated[bool, typer.Option(help="No per-epoch lines.")] = False,
) -> None:
    """Train a model (by default ERNet) on labelled frames; options marked [preset]
    default to the --preset recipe."""
    from .train import TrainConfig
    from .train import train as run_training

    names = tuple(n.strip() for n in classes.split(","))
    shorthands = {"features": features, "groups": groups, "blocks": blocks, "reduction": reduction}
    recipe = PRESETS[preset]
    config = recipe.architecture_config(architecture)
    config.update({ERNET_OPTIONS[k]: v for k, v in shorthands.items() if v is not None})
    config.update(parse_options(option or []))

    given = {
        "val_fraction": val_fraction,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "crop": crop,
        "lr": lr,
        "lr_step": lr_step,
        "lr_gamma": lr_gamma,
    }
    if normalization != "percentile" and noise_floor:
        raise typer.BadParameter("applies to --normalization percentile", param_hint="--noise-floor")
    norms = {"scale": Normalization.original(), "ernet-v2": Normalization.ernet_v2()}
    schedule = {**recipe.schedule(), **{k: v for k, v in given.items() if v is not None}}
    cfg = TrainConfig(
        data=data,
        out=out,
        val_data=val_data,
        architecture=ArchitectureSpec(architecture, config),
        class_names=names,
        class_weights=class_weights,
        network_classes=None
        if network_classes is None
        else tuple(n.strip() for n in network_classes.split(",")),
        normalization=norms.get(normalization, Normalization(noise_floor=noise_floor)),
        seed=seed,
        device=device,
        workers=workers,
        resume=resume,
        **schedule,
    )
    result = run_training(cfg, quiet=quiet)
    print(f"best frame-mean validation foreground IoU {result['best_score']:.4f}; checkpoints in {out}")


@simulate_app.command()
@command
def simulate(
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    count: Annotated[int, typer.Option(help="Number of image/mask pairs (or stacks with --frames > 1).")] = 8,
    frames: Annotated[int, typer.Option(help="Frames per stack (time-lapse) ; 1 writes single frames.")] = 1,
    size: Annotated[str, typer.Option(help="HEIGHTxWIDTH.")] = "256x256",
    bit_depth: Annotated[int, typer.Option(help="8 or 16.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the generator; the same seed, the same frames.")] = 0,
    empty_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of stacks with no cell in view (background and noise, no ER)."
        ),
    ] = 0.0,
    classes: Annotated[
        Literal["binary", "four"],
        typer.Option(
            help="Labels: binary (the original ERNet's: the tubular network is ER; sheets and the "
            "saturated perinuclear region are background) or four (background, tubule, sheet, SBT)."
        ),
    ] = "binary",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A generator range, KEY=[LOW,HIGH] (repeatable; SyntheticConfig's fields), e.g. "
            "sheet_extent=[0,0] to draw no sheets.",
        ),
    ] = None,
) -> None:
    """Generate synthetic ER frames with exact labels: NAME_image.tif + NAME_mask.tif."""
    import dataclasses

    import numpy as np
    import tifffile

    from ernet.runtime.io import atomic_output

    from .synthetic import SyntheticConfig, generate_stack

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {size!r}: expected HEIGHTxWIDTH, e.g. 512x512") from None
    ranges = {f.name for f in dataclasses.fields(SyntheticConfig) if f.type == "Range"}
    changes = parse_options(set_ or [], "--set")
    for key, value in changes.items():
        if key not in ranges:
            raise typer.BadParameter(
                f"{key}: not a generator range ({', '.join(sorted(ranges))})", param_hint="--set"
            )
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value)
        ):
            raise typer.BadParameter(f"{key}: expected [LOW,HIGH], got {value!r}", param_hint="--set")
        changes[key] = (float(value[0]), float(value[1]))
    cfg = SyntheticConfig(
        height=height,
        width=width,
        bit_depth=bit_depth,
        empty_fields=empty_fraction,
        classes=classes,
        **changes,
    )
    out.mkdir(parents=True, exist_ok=True)
    axes = "TYX" if frames > 1 else "YX"
    for i in range(count):
        stack = generate_stack(frames, seed=seed * 100003 + i, config=cfg)
        for kind in ("image", "mask"):
            data = np.stack([getattr(f, kind) for f in stack]) if frames > 1 else getattr(stack[0], kind)
            with atomic_output(out / f"synthetic_{i:04d}_{kind}.tif") as tmp:
                tifffile.imwrite(tmp, data, imagej=True, metadata={"axes": axes})
    print(f"wrote {count} image/mask pairs to {out} (classes: {', '.join(cfg.class_names)})")


def train_main() -> None:
    """Entry point of ``ernet-train``."""
    train_app()


def simulate_main() -> None:
    """Entry point of ``ernet-simulate``."""
    simulate_app()
