"""ERnet-v2's network: a residual Swin transformer for segmentation, registered as
``ERnetV2-Swin``; written from the SwinIR paper (Liang et al. 2021) and the published
checkpoint layout, not from ERnet-v2's code.

Tokens are single pixels at full resolution; residual Swin groups of transformer blocks
attend within non-overlapping ``window`` x ``window`` windows (no shift: the released
model's windows are 2 x 2, anchored at the frame origin, so tile sides and origins must
be multiples of the window). Module names reproduce the published checkpoints' keys.

Published checkpoints order their logits background, SBT, tubule, sheet; the project's
four-class convention is background, tubule, sheet, SBT (ERnet-v2's training labels), so
:func:`adopt_published` reorders the last layer's rows at load, and every artefact made
from it has output channel k = class k.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ernet.runtime.contract import FOUR_CLASSES, ModelContract, TileSpec
from ernet.runtime.metadata import ArchitectureSpec
from ernet.runtime.preprocess import Normalization

from . import Architecture, Fp16Policy, register

NAME = "ERnetV2-Swin"
#: For each class id, the logit channel of a published checkpoint that holds it.
PUBLISHED_CHANNEL_OF_CLASS = (0, 2, 3, 1)
#: The class id whose skeleton ERnet-v2's graph analysis measures.
TUBULE = 1


@dataclass(frozen=True)
class SwinConfig:
    """Hyper-parameters of the residual Swin network; defaults are ERnet-v2's release."""

    embed_dim: int = 64
    depths: tuple[int, ...] = (6, 6)
    num_heads: int = 8
    window: int = 2
    mlp_ratio: float = 2.0
    drop_path: float = 0.1

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.num_heads < 1 or self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths must be positive block counts, got {self.depths}")
        if self.window < 1 or self.mlp_ratio <= 0 or not 0 <= self.drop_path < 1:
            raise ValueError("window >= 1, mlp_ratio > 0 and 0 <= drop_path < 1 are required")

    @classmethod
    def of(cls, spec: ArchitectureSpec) -> SwinConfig:
        """The configuration of a (completed) spec."""
        config = dict(spec.config)
        config["depths"] = tuple(config["depths"])
        return cls(**config)

    def architecture(self) -> ArchitectureSpec:
        """This configuration as an architecture spec."""
        return ArchitectureSpec(
            NAME,
            {
                "embed_dim": self.embed_dim,
                "depths": list(self.depths),
                "num_heads": self.num_heads,
                "window": self.window,
                "mlp_ratio": self.mlp_ratio,
                "drop_path": self.drop_path,
            },
        )

    def flops_per_pixel(self, in_channels: int, n_classes: int) -> int:
        """Multiply-adds x 2 per pixel of one forward pass (matrix products and convolutions)."""
        c, n = self.embed_dim, self.window * self.window
        hidden = int(c * self.mlp_ratio)
        block = 2 * (3 * c * c + c * c + 2 * c * hidden) + 2 * 2 * n * c  # linears; q.k and a.v
        conv3 = 2 * 9 * c * c
        groups = sum(depth * block + conv3 for depth in self.depths)
        return 2 * 9 * in_channels * c + groups + 3 * conv3 + 2 * c * n_classes


def relative_position_index(window: int) -> torch.Tensor:
    """For each pair (i, j) of tokens of a window (row-major), the row of the bias table
    holding their offset: ``(dy + w - 1) * (2w - 1) + (dx + w - 1)``, d = i - j."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2 x N
    offset = coords[:, :, None] - coords[:, None, :] + window - 1  # 2 x N x N
    return offset[0] * (2 * window - 1) + offset[1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias."""

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: windows x tokens x dim."""
        windows, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        bias = bias.reshape(tokens, tokens, self.heads).permute(2, 0, 1)
        attention = torch.softmax((q * self.scale) @ k.transpose(-2, -1) + bias, dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(windows, tokens, dim))


class DropPath(nn.Module):
    """Stochastic depth: in training, a sample's residual branch is dropped with
    probability ``p`` (the rest scaled by 1 / (1 - p)); identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """B x H x W x C -> (B * windows) x (window^2) x C, windows row-major from the origin."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(x: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`to_windows`."""
    c = x.shape[-1]
    x = x.reshape(b, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class SwinBlock(nn.Module):
    """Pre-norm window attention and MLP, each a residual branch with stochastic depth."""

    def __init__(self, config: SwinConfig, drop_path: float) -> None:
        super().__init__()
        dim = config.embed_dim
        self.window = config.window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, config.num_heads, config.window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``x``: B x (H * W) x C tokens, row-major."""
        b, _, c = x.shape
        windows = to_windows(self.norm1(x).reshape(b, h, w, c), self.window)
        attended = from_windows(self.attn(windows), self.window, b, h, w).reshape(b, h * w, c)
        x = x + self.drop_path(attended)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BlockSequence(nn.Module):
    def __init__(self, config: SwinConfig, drop_paths: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(config, p) for p in drop_paths)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, h, w)
        return x


class ResidualSwinGroup(nn.Module):
    """Swin blocks, then a 3x3 conv on the feature map, plus the group's skip."""

    def __init__(self, config: SwinConfig, drop_paths: list[float]) -> None:
        super().__init__()
        dim = config.embed_dim
        self.residual_group = BlockSequence(config, drop_paths)
        self.resi_connection1 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.resi_connection1(y).flatten(2).transpose(1, 2) + x


class PatchNorm(nn.Module):
    """The patch embedding of single-pixel tokens: flatten, then a LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class ResidualSwin(nn.Module):
    """Shallow conv, residual Swin groups with a long skip, conv head to class logits.
    H and W must be multiples of the window."""

    def __init__(self, config: SwinConfig, in_channels: int, n_classes: int) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        rates = torch.linspace(0, config.drop_path, sum(config.depths)).tolist()
        starts = [sum(config.depths[:i]) for i in range(len(config.depths))]
        self.conv_first = nn.Conv2d(in_channels, dim, 3, padding=1)
        self.patch_embed = PatchNorm(dim)
        self.layers = nn.ModuleList(
            ResidualSwinGroup(config, rates[s : s + d]) for s, d in zip(starts, config.depths, strict=True)
        )
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.LeakyReLU(0.01))
        self.conv_last = nn.Conv2d(dim, dim, 3, padding=1)
        #: Part of the published layout (a restoration head), unused for segmentation.
        self.conv_combine = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.segmentation_decode = nn.Conv2d(dim, n_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        first = self.conv_first(image)
        x = self.patch_embed(first)
        for layer in self.layers:
            x = layer(x, h, w)
        body = self.norm(x).transpose(1, 2).reshape(b, self.config.embed_dim, h, w)
        x = self.conv_after_body(body) + first
        return self.segmentation_decode(self.conv_last(self.conv_before_upsample(x)))


#: ERnet-v2's inference preprocessing: frame percentiles 1 and 99, clipped, truncated to 8 bits.
ERNET_V2_NORMALIZATION = Normalization.ernet_v2()

_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")


def _expected_keys(depths: tuple[int, ...]) -> set[str]:
    model = ResidualSwin(SwinConfig(embed_dim=8, depths=depths, num_heads=1), 1, 2)
    return set(model.state_dict())


def _key_list(what: str, keys: list[str], shown: int = 4) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{what} {', '.join(keys[:shown])}{more}"


def infer_config(state: Mapping[str, torch.Tensor]) -> tuple[SwinConfig, int, int]:
    """The configuration, input channels and class count of a residual Swin state dict,
    from its key names and shapes; ValueError naming the keys that do not fit."""
    blocks: dict[int, set[int]] = {}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    # Block counts per group, as the keys number them; with no block keys at all, the
    # state is compared with the released layout (and its missing keys named).
    depths = tuple(max(blocks.get(g, {-1})) + 1 for g in range(max(blocks, default=-1) + 1))
    if not depths:
        depths = SwinConfig().depths
    if min(depths) < 1:
        raise ValueError(f"residual Swin groups are not numbered 0..{len(depths) - 1}: {sorted(blocks)}")
    expected = _expected_keys(depths)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        found = "; ".join(
            part for part in (_key_list("missing", missing), _key_list("unexpected", unexpected)) if part
        )
        raise ValueError(f"residual Swin keys do not match: {found}")
    first = state["conv_first.weight"]
    table = state["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"]
    hidden = state["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0]
    span = round(table.shape[0] ** 0.5)  # 2w - 1
    dim = int(first.shape[0])
    config = SwinConfig(
        embed_dim=dim,
        depths=depths,
        num_heads=int(table.shape[1]),
        window=(span + 1) // 2,
        mlp_ratio=hidden / dim,
    )
    return config, int(first.shape[1]), int(state["segmentation_decode.weight"].shape[0])


def ernet_v2_contract(config: SwinConfig, in_channels: int = 1) -> ModelContract:
    """The contract of an ERnet-v2 model: the four classes (tubules forming the network),
    ERnet-v2's own preprocessing, tiles at multiples of the window."""
    return ModelContract(
        in_channels=in_channels,
        class_names=FOUR_CLASSES,
        network_classes=(TUBULE,),
        normalization=ERNET_V2_NORMALIZATION,
        tiles=TileSpec(size=256, multiple_of=config.window, overlap=0.125),
    )


def _recognise(state: Mapping[str, torch.Tensor]) -> tuple[ArchitectureSpec, ModelContract]:
    """A published ERnet-v2 state dict: its configuration and :func:`ernet_v2_contract`."""
    config, in_channels, n_classes = infer_config(state)
    if n_classes != len(FOUR_CLASSES):
        raise ValueError(f"a published ERnet-v2 model has 4 output channels, this one {n_classes}")
    return config.architecture(), ernet_v2_contract(config, in_channels)


def adopt_published(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A published state dict with its logit channels in class-id order."""
    out = dict(state)
    order = torch.tensor(PUBLISHED_CHANNEL_OF_CLASS)
    for key in ("segmentation_decode.weight", "segmentation_decode.bias"):
        out[key] = state[key][order]
    return out


def _build(spec: ArchitectureSpec, contract: ModelContract) -> nn.Module:
    config = SwinConfig.of(spec)
    if contract.tiles.multiple_of % config.window:
        raise ValueError(f"tiles of a window-{config.window} model must be multiples of {config.window}")
    return ResidualSwin(config, contract.in_channels, contract.n_classes)


def _label(spec: ArchitectureSpec) -> str:
    c = spec.config
    return f"C{c['embed_dim']} depths {'+'.join(map(str, c['depths']))} heads {c['num_heads']} w{c['window']}"


def normalisation_and_softmax(graph: Any) -> set[int]:
    """Indices of the nodes an fp16 graph keeps in fp32: every LayerNormalization and
    Softmax (their reductions lose too much in fp16)."""
    return {i for i, node in enumerate(graph.node) if node.op_type in {"LayerNormalization", "Softmax"}}


#: Operators of a residual Swin graph that the fp16 conversion knows how to type.
FP16_OPS = frozenset(
    {
        "Conv", "LayerNormalization", "Softmax", "MatMul", "Gemm", "Add", "Mul", "Div", "Erf",
        "Reshape", "Transpose", "Gather", "Shape", "Slice", "Concat", "Unsqueeze", "Squeeze",
        "LeakyRelu", "Gelu", "Constant", "Split",
    }
)  # fmt: skip

ARCHITECTURE = register(
    Architecture(
        name=NAME,
        defaults=SwinConfig().architecture().config,
        build=_build,
        recognise=_recognise,
        adopt=adopt_published,
        flops_per_pixel=lambda spec, contract: SwinConfig.of(spec).flops_per_pixel(
            contract.in_channels, contract.n_classes
        ),
        fp16=Fp16Policy(FP16_OPS, normalisation_and_softmax),
        tile_multiple=lambda spec: SwinConfig.of(spec).window,
        label=_label,
    )
)
