"""Put the type stubs of TensorRT and of CUDA's Python bindings in a folder for mypy's
``MYPYPATH``, so ``make typecheck`` checks our calls against the real APIs on machines
without TensorRT or a GPU. Usage: ``python tools/prepare_stubs.py DEST``.

- TensorRT: the installed ``tensorrt-stubs`` come as bare ``tensorrt/__init__.pyi`` and
  ``tensorrt_bindings/*.pyi`` without a ``py.typed`` marker, so mypy ignores them in
  site-packages; and their generator emitted a few lines that are not Python
  (parameters named ``in``, a parameter without default after defaults): copied here,
  repaired.
- CUDA: ``cuda.bindings`` ships compiled modules without stubs; ``stubgen`` writes them
  from the installed module (it imports without a GPU). They give the names of the
  functions and enums, not their signatures: a misspelt call fails, a wrong argument
  does not.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

#: (pattern, replacement) fixing the TensorRT stub generator's syntax errors.
REPAIRS = (
    (re.compile(r"([(,] )in:"), r"\1in_:"),
    (re.compile(r"(power: Weights = None, channel_axis: int)\)"), r"\1 = ...)"),
)
#: The CUDA binding modules our code calls.
CUDA_MODULES = ("cuda.bindings.runtime",)


def copy_tensorrt_stubs(out: Path) -> None:
    """The installed ``tensorrt-stubs``, repaired, under ``out``."""
    import tensorrt_stubs

    site = Path(tensorrt_stubs.__file__).parents[1]
    for package in ("tensorrt", "tensorrt_bindings"):
        (out / package).mkdir(parents=True)
        for stub in (site / package).glob("*.pyi"):
            text = stub.read_text()
            for pattern, replacement in REPAIRS:
                text = pattern.sub(replacement, text)
            (out / package / stub.name).write_text(text)


def generate_cuda_stubs(out: Path) -> None:
    """Stubs of :data:`CUDA_MODULES` under ``out``, from the installed ``cuda-bindings``."""
    from mypy.stubgen import main as stubgen

    stubgen(["--quiet", "-o", str(out), *(arg for module in CUDA_MODULES for arg in ("-m", module))])


def main(dest: str) -> None:
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    copy_tensorrt_stubs(out)
    generate_cuda_stubs(out)


if __name__ == "__main__":
    main(sys.argv[1])
