"""Speed of the synthetic generator.

``python -m ernet.benchmarks.generator [--repeats 10]`` times ``generate`` on 1040 x 1392
frames (seeds 0, 1, ...; one warm-up), with binary and with four-class labels, 8- and
16-bit, and prints the median and slowest seconds per frame.
"""

from __future__ import annotations

import argparse
import statistics
import time

from ernet.training.synthetic import SyntheticConfig, generate

from .measure import machine


def seconds_per_frame(config: SyntheticConfig, repeats: int) -> list[float]:
    """Wall seconds of ``generate`` for seeds 0 .. repeats - 1 after one warm-up."""
    generate(repeats, config)
    out = []
    for seed in range(repeats):
        start = time.perf_counter()
        generate(seed, config)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    info = machine()
    print(f"1040x1392 frames, {args.repeats} seeds, {info['cores']} cores ({info['cpu']})\n")
    print("| labels | bits | median s | slowest s |")
    print("|---|---|---|---|")
    for classes in ("binary", "four"):
        for bits in (8, 16):
            config = SyntheticConfig(height=1040, width=1392, classes=classes, bit_depth=bits)
            times = seconds_per_frame(config, args.repeats)
            print(f"| {classes} | {bits} | {statistics.median(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
