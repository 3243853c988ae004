"""The one error and exit-code policy of every ``ernet-*`` command.

A problem is one line on stderr, ``error: <file>: <problem>``, and an exit code:
1 for errors, 2 for bad usage, 130 for Ctrl-C. Commands wrap their body in
:func:`command` (or decorate it); commands over several inputs report each failed
input with :class:`Failures` and go on with the next.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from ..errors import REPORTED, error_line
from ..models import EMBEDDED
from .launch import EXIT_INTERRUPTED

EXIT_ERROR = 1
EXIT_USAGE = 2

#: The modules each package extra brings (pyproject.toml's optional dependencies).
EXTRAS = {
    "train": ("torch",),
    "export": ("torch", "onnx", "onnxscript"),
    "analysis": ("skimage", "skan", "networkx", "matplotlib"),
    "bench": ("matplotlib",),
    "bioimageio": ("bioimageio",),
    "acquisition": ("pymmcore_plus", "useq"),
    "zarr": ("zarr", "ome_zarr", "ome_zarr_models"),
    "dask": ("dask", "distributed"),
}

#: The help of every command's --tile and --overlap: the run spec's tiling policy.
TILE_HELP = (
    "Tile size; default: on the CPU whole frames (or the largest tiles the memory allows), "
    "else the model's training crop."
)
OVERLAP_HELP = "Tile overlap in pixels; default: a quarter of the training crop."
#: The help of every command's --model.
MODEL_HELP = f"ONNX model, or an embedded model by name ({', '.join(EMBEDDED)}); default: default."

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> None:
    """Print one error line to stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def interrupted(subject: Path | str | None = None) -> typer.Exit:
    """Report Ctrl-C (for ``subject``, whose outputs were not written); the exit to raise."""
    fail(f"{subject}: interrupted; its outputs were not written" if subject is not None else "interrupted")
    return typer.Exit(EXIT_INTERRUPTED)


@contextmanager
def reported() -> Iterator[None]:
    """Turn an error inside into its line and exit code."""
    try:
        yield
    except typer.Exit:  # an exit code chosen by the command (click's Exit is a RuntimeError)
        raise
    except typer.BadParameter as exc:
        fail(f"{exc.param_hint}: {exc.message}" if exc.param_hint else exc.message)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        raise interrupted() from None
    except REPORTED as exc:
        fail(error_line(exc))
        raise typer.Exit(EXIT_ERROR) from None


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a Typer command so that it follows the policy."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with reported():
            return fn(*args, **kwargs)

    return run


class Failures:
    """The inputs of a command that failed, each reported in one line as it fails."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def each(self, subject: Path) -> Iterator[None]:
        """Process ``subject``: an error is reported and counted (the block is left, the
        command goes on); Ctrl-C stops the command."""
        try:
            yield
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            raise interrupted(subject) from None
        except REPORTED as exc:
            fail(error_line(exc, subject))
            self.count += 1

    def exit(self) -> None:
        """Exit with the error code if any input failed."""
        if self.count:
            raise typer.Exit(EXIT_ERROR)


class PolicyApp(typer.Typer):
    """A Typer app whose usage errors (unknown option, bad value) are one line and exit 2,
    and whose missing optional dependencies name the extra to install."""

    def __init__(self, *, extra: str | None = None, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(**kwargs)
        #: The package extra the command's imports come from (e.g. ``train``).
        self.extra = extra

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 (Typer's signature)
        """Run the command; Typer's own errors become one ``error:`` line and their code;
        SIGTERM (a job scheduler's kill) is handled as Ctrl-C: outputs in progress removed."""
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            kwargs["standalone_mode"] = False  # errors come back here, not printed by click
            code = typer.main.get_command(self).main(*args, **kwargs)
        except typer.Abort:
            fail("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except typer.TyperException as exc:  # click's errors: bad usage (2), bad file (1)
            exit_code = getattr(exc, "exit_code", EXIT_ERROR)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if exit_code == EXIT_USAGE and ctx is not None else ""
            fail(f"{exc.format_message()}{hint}")
            sys.exit(exit_code)
        except ModuleNotFoundError as exc:
            module = (exc.name or "").partition(".")[0]
            extras = [e for e in (self.extra, *EXTRAS) if e is not None and module in EXTRAS.get(e, ())]
            if extras:  # the command's own extra first (several extras bring torch)
                fail(missing_extra(Path(sys.argv[0]).name, extras[0], module))
            else:  # a base dependency: the installation is broken
                fail(f"{module or exc} is not installed, though ernet needs it: reinstall ernet")
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


def missing_extra(program: str, extra: str, module: str) -> str:
    """The line that says which extra brings a missing ``module``."""
    return f"{program} needs the '{extra}' extra ({module} is not installed): pip install 'ernet[{extra}]'"


def typer_app(extra: str | None = None) -> typer.Typer:
    """A Typer app as every command has it: plain help, no completion, no rich
    tracebacks, one-line usage errors; ``extra``: the package extra it needs."""
    return PolicyApp(extra=extra, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
