"""ERNet: the RCAN-style residual network of Lu et al. (2020), as a torch module.

Module names reproduce the published checkpoints' parameter names exactly:
``head.0``, ``body.{g}.body.{b}.body.{0,2}``, ``body.{g}.body.{b}.body.3.conv_du.{0,2}``,
``body.{g}.body.{B}``, ``body.{G}`` and ``tail.0``.
"""

from __future__ import annotations

import torch
from torch import nn

from ernet.runtime.metadata import ModelConfig


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

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
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
