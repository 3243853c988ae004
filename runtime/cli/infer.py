"""``ernet-infer``: segment images and stacks. Thin: parse, call the API, report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Literal

import typer

from ..analysis import AnalysisOptions, FractionsTable, frame_indices, require_analysis_libraries
from ..errors import OutputError
from ..io import check_name_length, open_image, output_path, reader_for, refuse_existing
from ..io.naming import DEFAULT_IMAGE_SUFFIX, ZARR_IMAGE_SUFFIX
from ..pipeline import Outputs, Timings, segment_image
from ..postprocess import ProbabilityFormat
from ..progress import progress
from ..segmenter import Segmenter
from ..spec import Provider, RunSpec
from .policy import MODEL_HELP, OVERLAP_HELP, TILE_HELP, Failures, command, fail, typer_app

app = typer_app(extra="analysis")
#: The name of the image-label that --labels-into-input adds to an OME-Zarr image.
LABELS_NAME = "ernet"
FIGURES_HELP = "also draw <stem>_graph_NNNN.png per frame and, for stacks, <stem>_metrics.png over time."
FRACTIONS_HELP = (
    "Also write this CSV as ERnet-v2 writes its statistics (Filename,Tubule fraction,Sheet fraction,"
    "SBT fraction): a row per frame of every input; needs those classes."
)


def plan_outputs(
    inputs: list[Path],
    out_dir: Path | None,
    *,
    probabilities: ProbabilityFormat | None,
    overlay: bool,
    metrics: bool,
    overwrite: bool,
    suffix_of: Callable[[Path], str] = lambda source: DEFAULT_IMAGE_SUFFIX,
    labels_into: Callable[[Path], Path] | None = None,
) -> list[Outputs]:
    """Output files per input: images with the suffix ``suffix_of`` the input, the
    mask at ``labels_into(input)`` where given; refuses to overwrite an input, or an
    output unless asked."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: output folder is not a directory")
    sources = {p.resolve() for p in inputs}
    plans = []
    seen: set[Path] = set()
    for source in inputs:
        images = suffix_of(source)
        plan = Outputs(
            labels_into(source) if labels_into else output_path(source, "mask", out_dir, images),
            output_path(source, "probabilities", out_dir, images) if probabilities else None,
            probabilities or "uint8",
            output_path(source, "overlay", out_dir, images) if overlay else None,
            output_path(source, "metrics", out_dir, ".csv") if metrics else None,
            overwrite,
        )
        for target in plan.paths():
            check_name_length(target, source)
            resolved = target.resolve()
            if resolved in sources:
                raise OutputError(f"{target}: output for {source} would overwrite an input")
            if resolved in seen:
                raise OutputError(f"{target}: two inputs would write the same output")
            seen.add(resolved)
            refuse_existing(target, overwrite)
        plans.append(plan)
    return plans


def check_cluster_options(
    dask: str | None, resume: bool, out_format: str, metrics: bool, overlay: bool, fractions: Path | None
) -> None:
    """Usage errors of options that need --dask, or that a cluster run does not make."""
    if dask is None:
        if resume:
            raise typer.BadParameter(
                "goes on from an interrupted --dask run: add --dask", param_hint="--resume"
            )
        return
    if out_format == "tif":
        raise typer.BadParameter("workers write OME-Zarr: leave out --out-format tif", param_hint="--dask")
    for given, name in (
        (metrics, "--metrics"),
        (overlay, "--overlay"),
        (fractions is not None, "--fractions-csv"),
    ):
        if given:
            raise typer.BadParameter(f"{name} is made in one process: leave out --dask", param_hint="--dask")


def image_suffix(source: Path, out_format: str, on_cluster: bool) -> str:
    """The suffix of ``source``'s image outputs: OME-Zarr where asked, for zarr inputs and
    on a cluster (under ``auto``), else TIFF."""
    if out_format == "auto":
        zarr = on_cluster or reader_for(source).name == "zarr"
        return ZARR_IMAGE_SUFFIX if zarr else DEFAULT_IMAGE_SUFFIX
    return ZARR_IMAGE_SUFFIX if out_format == "zarr" else DEFAULT_IMAGE_SUFFIX


def input_labels(source: Path, series: int | None) -> Path:
    """Where --labels-into-input puts the mask of ``source``: its image's ``labels/ernet``."""
    from ..io.omezarr.reader import image_group

    return image_group(source, series) / "labels" / LABELS_NAME


def parse_index(values: list[str]) -> dict[str, int]:
    """``["Z=3", "Q=0"]`` -> ``{"Z": 3, "Q": 0}``."""
    out = {}
    for value in values:
        axis, sep, number = value.partition("=")
        if not sep or len(axis.strip()) != 1 or not number.strip().lstrip("-").isdigit():
            raise typer.BadParameter(f"expected AXIS=INDEX such as Z=0, got {value!r}", param_hint="--index")
        out[axis.strip().upper()] = int(number)
    return out


def _readable(source: Path, failures: Failures) -> bool:
    """Whether ``source`` is there and of a type a reader takes; if not, report it."""
    with failures.each(source):
        reader_for(source)
        return True
    return False


def finish_fractions(fractions: FractionsTable, failures: Failures, quiet: bool) -> None:
    """Write the fractions CSV if every input succeeded (a table of all or none), else say
    it was not written."""
    if failures.count:
        fail(f"{fractions.path}: not written, {failures.count} input(s) failed")
        return
    fractions.finish()
    if not quiet:
        print(f"wrote {fractions.path} ({len(fractions.rows)} frames)", file=sys.stderr)


def fallback_notes(fallbacks: list[tuple[str, str]], verbose: bool, asked: str) -> list[str]:
    """The providers passed over: a line each with the reason where the user asked for
    one by name or for ``verbose``, else (under ``auto``) one short line."""
    if verbose or asked != "auto":
        return [f"note: provider {name} not used: {reason}" for name, reason in fallbacks]
    if not fallbacks:
        return []
    names = ", ".join(name for name, _ in fallbacks)
    return [f"note: {names} not available here (--verbose says why)"]


def throughput(frames: int, pixels: int, timings: Timings, total: float, backend: str) -> str:
    """The run's summary line: the model's throughput apart from analysis and the total."""
    mpix = pixels / 1e6
    seconds = max(timings.segmentation, 1e-9)
    line = (
        f"{frames} frames, {mpix:.2f} MPix: segmentation {timings.segmentation:.2f} s, "
        f"{frames / seconds:.2f} frames/s, {mpix / seconds:.2f} MPix/s on {backend}"
    )
    if timings.analysis:
        line += f"; network analysis {timings.analysis:.2f} s"
    return line + f"; total {total:.2f} s"


@app.command()
@command
def infer(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Images (TIFF, PNG, JPG), TIFF stacks, zarr / OME-Zarr stores, or folders (or quoted "
            "globs) of TIFFs, each read as one time-lapse.",
            show_default=False,
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help=MODEL_HELP,
        ),
    ] = None,
    provider: Annotated[
        Provider, typer.Option(help="Execution provider; auto: the fastest that starts here.")
    ] = "auto",
    fallback: Annotated[
        bool, typer.Option(help="If the provider asked for cannot start, use the next one (else: error).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder; default: beside each input.")
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(min=1, help=TILE_HELP),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(min=0, help=OVERLAP_HELP),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Tiles per model call.")] = 4,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads; default: the physical cores available.")
    ] = None,
    fp16: Annotated[
        bool,
        typer.Option(help="ort-tensorrt provider: allow fp16 layers (native TensorRT: use model.fp16.onnx)."),
    ] = False,
    engine: Annotated[
        Path | None,
        typer.Option(
            help="Native TensorRT engine (.plan with its .plan.json manifest); built there from --model "
            "if absent. Default: engines cached per model, GPU and TensorRT version."
        ),
    ] = None,
    rebuild_engine: Annotated[
        bool, typer.Option(help="Rebuild the TensorRT engine, e.g. one made for another GPU or TensorRT.")
    ] = False,
    normalize: Annotated[
        Literal["frame", "stack"],
        typer.Option(help="Normalise each frame on its own, or a whole stack alike."),
    ] = "frame",
    channel: Annotated[
        int | None, typer.Option(help="Channel to segment in multichannel or RGB inputs (0-based).")
    ] = None,
    index: Annotated[
        list[str] | None, typer.Option(help="Fix an extra axis, e.g. --index Q=0 (repeatable).")
    ] = None,
    probabilities: Annotated[
        Literal["uint8", "float16"] | None,
        typer.Option(help="Also write <stem>_probabilities.tif per class: uint8 (0-255) or float16."),
    ] = None,
    overlay: Annotated[
        bool, typer.Option(help="Also write <stem>_overlay.tif (RGB) for quick viewing.")
    ] = False,
    metrics: Annotated[
        bool, typer.Option(help="Also write <stem>_metrics.csv: ER network metrics per frame.")
    ] = False,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel side in µm for --metrics; default: from the file.")
    ] = None,
    figures: Annotated[bool, typer.Option(help="With --metrics: " + FIGURES_HELP)] = False,
    fractions_csv: Annotated[Path | None, typer.Option(help=FRACTIONS_HELP)] = None,
    min_object_size: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Drop foreground pieces under this many pixels from masks, overlays and --metrics; "
            f"0: keep all (--metrics still drops those under {AnalysisOptions.min_object_size} px).",
            show_default="the model's (embedded default: README, Background and noise)",
        ),
    ] = None,
    out_format: Annotated[
        Literal["auto", "tif", "zarr"],
        typer.Option(
            help="Image outputs as TIFF or as OME-Zarr (<stem>_mask.ome.zarr: NGFF image-label, "
            "multiscale); auto: OME-Zarr for zarr inputs and with --dask, else TIFF."
        ),
    ] = "auto",
    series: Annotated[
        int | None, typer.Option(min=0, help="Series of a bioformats2raw OME-Zarr (default: 0).")
    ] = None,
    labels_into_input: Annotated[
        bool,
        typer.Option(
            help="OME-Zarr image inputs: add the mask to the input image as labels/ernet (NGFF "
            "labels), moved into place when complete, instead of a new store."
        ),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            help="Segment on a Dask cluster: local:N (N worker processes here) or a scheduler "
            "address such as tcp://host:8786; workers write OME-Zarr outputs.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="With --dask: go on from an interrupted run, skipping the frames it completed."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    memory_check: Annotated[
        bool,
        typer.Option(
            help="Refuse frames that need more memory than is available (with --dask, planes too "
            "large for a worker are segmented in regions instead)."
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say why each faster provider was passed over.")
    ] = False,
) -> None:
    """Segment ER in each INPUT; writes <stem>_mask.tif or <stem>_mask.ome.zarr (uint8 class
    ids, input axes)."""
    if figures and not metrics:
        raise typer.BadParameter("draws the network analysis: add --metrics", param_hint="--figures")
    check_cluster_options(dask, resume, out_format, metrics, overlay, fractions_csv)
    selection = parse_index(index or [])
    failures = Failures()
    inputs = [source for source in inputs if _readable(source, failures)]
    if not inputs:  # all refused, before any model is loaded
        failures.exit()
    plans = plan_outputs(
        inputs,
        out,
        probabilities=probabilities,
        overlay=overlay,
        metrics=metrics,
        overwrite=overwrite,
        suffix_of=lambda source: image_suffix(source, out_format, dask is not None),
        labels_into=(lambda source: input_labels(source, series)) if labels_into_input else None,
    )
    if metrics:
        require_analysis_libraries(figures)
    if fractions_csv is not None:
        refuse_existing(fractions_csv, overwrite)
    spec = RunSpec(
        model, provider, fallback, threads, tile, overlap, batch, fp16, engine, rebuild_engine,
        min_object_size=min_object_size,
    )  # fmt: skip
    segmenter = Segmenter(spec, warmup=False)
    if not quiet:
        for line in fallback_notes(segmenter.backend.fallbacks, verbose, "tensorrt" if engine else provider):
            print(line, file=sys.stderr)
        print(
            f"model: {segmenter.model_path or engine} on {segmenter.backend.description}"
            f" ({segmenter.plan.summary()})",
            file=sys.stderr,
        )
    class_names = segmenter.contract.class_names
    fractions = None
    if fractions_csv is not None:
        FractionsTable.check_classes(class_names, segmenter.model_path or "the model")
        fractions = FractionsTable(fractions_csv, overwrite)
    analysis = AnalysisOptions(
        pixel_size=pixel_size, min_object_size=segmenter.min_object_size or AnalysisOptions.min_object_size
    )
    frames = pixels = 0
    timings = Timings()
    start = time.perf_counter()
    with ExitStack() as cluster:
        client = None
        if dask:  # the dask extra, imported only here
            from ..cluster import SourceRef, connect, segment_on_cluster

            client = cluster.enter_context(connect(dask))
        for source, plan in zip(inputs, plans, strict=True):
            with failures.each(source):
                image = open_image(source, channel, selection, series)
                with progress(image.n_frames, source.name, quiet=quiet) as advance:
                    if client is None:
                        spent = segment_image(
                            segmenter,
                            image,
                            plan,
                            normalize_over=normalize,
                            analysis=analysis,
                            figures=figures,
                            advance=advance,
                            check_memory=memory_check,
                        )
                    else:
                        spent = segment_on_cluster(
                            client,
                            segmenter,
                            image,
                            SourceRef(source, channel, tuple(selection.items()), series),
                            plan,
                            normalize_over=normalize,
                            resume=resume,
                            advance=advance,
                        )
                timings.add(spent)
                if fractions:  # from the masks as written
                    mask = open_image(plan.mask)
                    for where, labels in zip(
                        frame_indices(mask.axes, mask.shape), mask.frames(), strict=True
                    ):
                        fractions.add(source.name, where, labels, class_names)
                frames += image.n_frames
                pixels += image.n_frames * image.frame_shape[0] * image.frame_shape[1]
                if not quiet:
                    for path in plan.paths():
                        print(f"wrote {path}", file=sys.stderr)
    if fractions:
        finish_fractions(fractions, failures, quiet)
    print(
        throughput(frames, pixels, timings, time.perf_counter() - start, segmenter.backend.description)
        + (f"; {failures.count} input(s) failed" if failures.count else "")
    )
    failures.exit()


def main() -> None:
    """Entry point of ``ernet-infer``."""
    app()
