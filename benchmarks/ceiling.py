"""How close to the machine's limit: the fp32 GEMM rate per core, and a model's FLOPs.

``gemm_gflops`` times a large single-precision matrix multiply in a fresh process
whose BLAS may use only ``threads`` threads (multi-threaded BLAS scales poorly on
small machines, so the ceiling is the one-thread rate times the cores used).
``onnx_flops_per_pixel`` counts 2 x multiply-adds of every convolution that runs at
full resolution, read from the ONNX graph itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_GEMM = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
a = np.random.default_rng(0).random((n, n), dtype=np.float32)
b = a.T.copy()
a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(repeats))
print(json.dumps(2 * n**3 / best / 1e9))
"""
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def gemm_gflops(threads: int = 1, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 GEMM rate (GFLOP/s) of an ``n`` x ``n`` product on ``threads``."""
    env = {**os.environ, **dict.fromkeys(_BLAS_THREADS, str(threads))}
    done = subprocess.run(
        [sys.executable, "-c", _GEMM, str(n), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout))


#: Global pooling: what follows it runs once per image.
_POOLS = {"GlobalAveragePool", "ReduceMean"}
#: Operators through which a pooled tensor stays per-image.
_POINTWISE = {"Conv", "Relu", "Sigmoid", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def onnx_flops_per_pixel(path: Path) -> int:
    """FLOPs (2 x multiply-adds) per output pixel of the convolutions of an ONNX model.

    Every Conv counts 2 x its weight size per pixel (bias adds left out), except those in a
    channel-attention branch: convolutions fed, directly or through pointwise
    operators, by a global average pool run once per image, not per pixel.
    """
    import math

    import onnx

    graph = onnx.load(str(path)).graph
    sizes = {init.name: math.prod(init.dims) for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def per_image(tensor: str) -> bool:
        node = producer.get(tensor)
        if node is None:
            return False
        if node.op_type in _POOLS:
            return True
        return node.op_type in _POINTWISE and per_image(node.input[0])

    return sum(
        2 * sizes[node.input[1]]
        for node in graph.node
        if node.op_type == "Conv" and not per_image(node.input[0])
    )
