"""The entry points of the ``ernet-*`` commands.

Each imports its command only when run, so that Ctrl-C while the command's libraries
load (numpy, ONNX Runtime, torch: seconds on a cold disk) ends as every interruption
does, with one line and exit code 130, not a traceback. Nothing here imports more
than the standard library.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module

#: The exit code of an interrupted command (128 + SIGINT), as in :mod:`ernet.runtime.cli.policy`.
EXIT_INTERRUPTED = 130


def _launcher(target: str) -> Callable[[], None]:
    module, name = target.split(":")

    def launch() -> None:
        try:
            main = getattr(import_module(module), name)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)
        main()

    launch.__doc__ = f"Run ``{target}``."
    return launch


infer = _launcher("ernet.runtime.cli.infer:main")
analyze = _launcher("ernet.runtime.cli.analyze:main")
validate = _launcher("ernet.runtime.cli.validate:main")
train = _launcher("ernet.training.cli:train_main")
simulate = _launcher("ernet.training.cli:simulate_main")
export = _launcher("ernet.export.cli:main")
bench = _launcher("ernet.benchmarks.cli:main")
live = _launcher("ernet.runtime.cli.live:main")
