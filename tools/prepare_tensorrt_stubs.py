"""Copy the installed ``tensorrt-stubs`` into a folder for mypy's ``MYPYPATH``, repaired.

The stubs install as bare ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/*.pyi``
without a ``py.typed`` marker, so mypy ignores them in site-packages; and their
generator emitted a few lines that are not Python (parameters named ``in``, a
parameter without default after defaults). Usage: ``python tools/prepare_tensorrt_stubs.py DEST``.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

#: (pattern, replacement) fixing the generator's syntax errors.
REPAIRS = (
    (re.compile(r"([(,] )in:"), r"\1in_:"),
    (re.compile(r"(power: Weights = None, channel_axis: int)\)"), r"\1 = ...)"),
)


def main(dest: str) -> None:
    import tensorrt_stubs

    site = Path(tensorrt_stubs.__file__).parents[1]
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    for package in ("tensorrt", "tensorrt_bindings"):
        (out / package).mkdir(parents=True)
        for stub in (site / package).glob("*.pyi"):
            text = stub.read_text()
            for pattern, replacement in REPAIRS:
                text = pattern.sub(replacement, text)
            (out / package / stub.name).write_text(text)


if __name__ == "__main__":
    main(sys.argv[1])
