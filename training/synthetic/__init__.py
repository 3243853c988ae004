"""Synthetic ER images with exact labels and their network graph (numpy/scipy only, no torch).

``generate`` draws one frame, ``generate_stack`` a time-lapse of one cell; a
:class:`SyntheticConfig` sets the ranges its parameters are drawn from and the label
convention (binary, as the original ERNet's labels, or ERnet-v2's four classes).
"""

from .network import NetworkGraph
from .stack import SyntheticConfig, SyntheticFrame, generate, generate_stack

__all__ = ["NetworkGraph", "SyntheticConfig", "SyntheticFrame", "generate", "generate_stack"]
