"""Measuring: repeated timings and their summary, child processes' peak memory, the
machine description recorded with every result, and the benchmark frame."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ernet.runtime import __version__


def timings(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, p95, p99 and spread of a list of timings."""
    p95, p99 = np.percentile(seconds, [95, 99])
    return {
        "median_s": statistics.median(seconds),
        "p95_s": float(p95),
        "p99_s": float(p99),
        "min_s": min(seconds),
        "max_s": max(seconds),
    }


def machine() -> dict[str, Any]:
    """CPU model, cores and library versions, recorded with every result."""
    import onnxruntime

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ernet": __version__,
        "platform": platform.platform(),
    }


def uint16_frame(height: int, width: int) -> np.ndarray:
    """A uint16 frame (the costlier input type: converted to float32 before use)."""
    return np.random.default_rng(0).integers(0, 4096, (height, width), dtype=np.uint16)


#: Runs a command and prints its peak RSS. Linux keeps a process's RSS high-water mark
#: across fork and exec, so a child forked straight from a big benchmark process would
#: report the parent's peak; forked from this small interpreter it reports its own.
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps([done.returncode, seconds, rss, done.stderr[-2000:]]))
"""


def run_measured(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of one command; fails if it fails."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, check=True)
    returncode, seconds, rss, stderr = json.loads(out.stdout)
    if returncode:
        raise RuntimeError(f"{args[0]} failed: {stderr}")
    return float(seconds), int(rss)
