"""Package discovery for the ``ernet`` namespace (metadata lives in pyproject.toml).

Each layer is a top-level folder mapped to ``ernet.<folder>``; its sub-packages are
found here, so a new sub-package needs no change to the packaging.
"""

from setuptools import find_packages, setup

LAYERS = ("runtime", "training", "export", "benchmarks")

setup(
    packages=[
        f"ernet.{layer}" + (f".{sub}" if sub else "")
        for layer in LAYERS
        for sub in ["", *find_packages(layer)]
    ],
    package_dir={f"ernet.{layer}": layer for layer in LAYERS},
)
