"""ERNet: the RCAN-style residual network of Lu et al. (2020), registered as ``ERNet-RCAN``.

Module names reproduce the published checkpoints' parameter names exactly:
``head.0``, ``body.{g}.body.{b}.body.{0,2}``, ``body.{g}.body.{b}.body.3.conv_du.{0,2}``,
``body.{g}.body.{B}``, ``body.{G}`` and ``tail.0``; a published checkpoint's
configuration is read back from those names and shapes. Its fp16 export keeps every
channel-attention branch in fp32 (the global pool sums a whole tile, which overflows
fp16).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ernet.runtime.contract import ModelContract, TileSpec, class_names_for
from ernet.runtime.metadata import ERNET_ARCHITECTURE, ArchitectureSpec
from ernet.runtime.preprocess import Normalization

from . import Architecture, Fp16Policy, register


@dataclass(frozen=True)
class ERNetConfig:
    """Hyper-parameters of the ERNet (RCAN) network. Defaults are the published ones."""

    in_channels: int = 1
    n_classes: int = 2
    n_feats: int = 64
    n_resgroups: int = 5
    n_resblocks: int = 10
    reduction: int = 16

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"model config {name} must be a positive integer, got {value!r}")
        if self.n_feats // self.reduction < 1:
            raise ValueError("n_feats // reduction must be at least 1")

    @property
    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per pixel of one forward pass (convolutions only)."""
        f, c = self.n_feats, self.in_channels
        conv3 = 2 * 9 * f * f
        block = 2 * conv3  # the attention branch is per image, not per pixel
        group = self.n_resblocks * block + conv3
        return 2 * 9 * c * f + self.n_resgroups * group + conv3 + 2 * f * self.n_classes

    def architecture(self) -> ArchitectureSpec:
        """This configuration as an architecture spec (channels and classes are the contract's)."""
        values = asdict(self)
        del values["in_channels"], values["n_classes"]
        return ArchitectureSpec(ERNET_ARCHITECTURE, values)

    def contract(self, tile_size: int = 256, normalization: Normalization | None = None) -> ModelContract:
        """A contract for this network's channels and classes (classes named by their count)."""
        return ModelContract(
            in_channels=self.in_channels,
            class_names=class_names_for(self.n_classes),
            normalization=normalization or Normalization(),
            tiles=TileSpec(tile_size),
        )

    @classmethod
    def of(cls, spec: ArchitectureSpec, contract: ModelContract) -> ERNetConfig:
        """The configuration of a (completed) spec for a contract's channels and classes."""
        return cls(in_channels=contract.in_channels, n_classes=contract.n_classes, **spec.config)


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=True)


class ChannelAttention(nn.Module):
    """Global average pool -> 1x1 conv F->F/r -> ReLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.conv_du = nn.Sequential(
            _conv(channels, hidden, 1), nn.ReLU(inplace=True), _conv(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class ResidualAttentionBlock(nn.Module):
    """3x3 conv -> ReLU -> 3x3 conv -> channel attention, plus the block's skip."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3),
            nn.ReLU(inplace=True),
            _conv(channels, channels, 3),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """``n_blocks`` attention blocks and a 3x3 conv, plus the group's skip."""

    def __init__(self, channels: int, reduction: int, n_blocks: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ResidualAttentionBlock(channels, reduction) for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, _conv(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ERNet(nn.Module):
    """Head conv, residual groups with a long skip, 1x1 conv to class logits."""

    def __init__(self, config: ERNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ERNetConfig()
        c = self.config
        self.head = nn.Sequential(_conv(c.in_channels, c.n_feats, 3))
        groups: list[nn.Module] = [
            ResidualGroup(c.n_feats, c.reduction, c.n_resblocks) for _ in range(c.n_resgroups)
        ]
        self.body = nn.Sequential(*groups, _conv(c.n_feats, c.n_feats, 3))
        self.tail = nn.Sequential(_conv(c.n_feats, c.n_classes, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.head(image)
        return self.tail(self.body(x) + x)


_GROUP_KEY = re.compile(r"^body\.(\d+)\.body\.(\d+)\.")


def infer_config(state: Mapping[str, torch.Tensor]) -> ERNetConfig:
    """Recover F, G, B, r and channel counts from parameter names and shapes."""
    try:
        head = state["head.0.weight"]
        tail = state["tail.0.weight"]
        blocks_of_group: dict[int, set[int]] = {}
        for key in state:
            match = _GROUP_KEY.match(key)
            if match:
                blocks_of_group.setdefault(int(match[1]), set()).add(int(match[2]))
        n_groups = len(blocks_of_group)
        # Each group's Sequential holds B blocks and then its closing conv (index B).
        n_blocks = max(blocks_of_group[0])
        hidden = state["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not an ERNet state dict (missing {exc})") from None
    if sorted(blocks_of_group) != list(range(n_groups)) or f"body.{n_groups}.weight" not in state:
        raise ValueError("not an ERNet state dict (residual groups are not numbered 0..G-1)")
    n_feats = int(head.shape[0])
    return ERNetConfig(
        in_channels=int(head.shape[1]),
        n_classes=int(tail.shape[0]),
        n_feats=n_feats,
        n_resgroups=n_groups,
        n_resblocks=n_blocks,
        reduction=n_feats // int(hidden),
    )


def _recognise(state: Mapping[str, torch.Tensor]) -> tuple[ArchitectureSpec, ModelContract]:
    """A published ERNet state dict: its configuration, and the original preprocessing
    (value / 255) it was trained with."""
    config = infer_config(state)
    return config.architecture(), config.contract(normalization=Normalization.original())


#: Operators of an ERNet graph that the fp16 conversion knows how to type.
FP16_OPS = frozenset({"Conv", "Relu", "Add", "Mul", "Sigmoid", "ReduceMean", "GlobalAveragePool"})
_POOL_OPS = {"ReduceMean", "GlobalAveragePool"}


def attention_branches(graph: Any) -> set[int]:
    """Indices of the nodes of every channel-attention branch of an ONNX graph: from each
    global pool up to (not including) the ``Mul`` that scales the features by the gate."""
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    branch: set[int] = set()
    for start, node in enumerate(graph.node):
        if node.op_type not in _POOL_OPS:
            continue
        i = start
        while graph.node[i].op_type != "Mul":
            branch.add(i)
            following = consumers.get(graph.node[i].output[0], [])
            if len(following) != 1:
                raise ValueError(f"channel attention at node {graph.node[i].name!r} does not end in a Mul")
            i = following[0]
    return branch


#: ERNet's fp16 export: every operator it has in fp16, but each channel-attention branch.
FP16_POLICY = Fp16Policy(FP16_OPS, attention_branches)


def _label(spec: ArchitectureSpec) -> str:
    c = spec.config
    return f"F{c['n_feats']} G{c['n_resgroups']} B{c['n_resblocks']} r{c['reduction']}"


ARCHITECTURE = register(
    Architecture(
        name=ERNET_ARCHITECTURE,
        defaults=ERNetConfig().architecture().config,
        build=lambda spec, contract: ERNet(ERNetConfig.of(spec, contract)),
        recognise=_recognise,
        flops_per_pixel=lambda spec, contract: ERNetConfig.of(spec, contract).flops_per_pixel,
        fp16=FP16_POLICY,
        label=_label,
    )
)
