"""Named training recipes: where ``ernet-train`` starts, each option overridable.

``shipped`` is the recipe of the embedded default model (sized for CPUs: see the
README's *Choosing the configuration*); ``published`` is the original ERNet's size and
schedule (Lu et al. 2020), far slower on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ernet.runtime.metadata import ERNET_ARCHITECTURE

PresetName = Literal["shipped", "published"]


@dataclass(frozen=True)
class Preset:
    """A training recipe: the schedule and, for ERNet, the network size."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    crop: int
    lr: float
    lr_step: int
    lr_gamma: float
    val_fraction: float
    #: ERNet's options (n_feats, n_resgroups, n_resblocks, reduction).
    ernet: dict[str, Any] = field(default_factory=dict)

    def schedule(self) -> dict[str, Any]:
        """The training options of the recipe, as :class:`~ernet.training.train.TrainConfig` names them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ernet"}

    def architecture_config(self, architecture: str) -> dict[str, Any]:
        """The preset's options of ``architecture`` (none for architectures it does not size)."""
        return dict(self.ernet) if architecture == ERNET_ARCHITECTURE else {}


PRESETS: dict[str, Preset] = {
    "shipped": Preset(
        epochs=30,
        steps_per_epoch=100,
        batch_size=4,
        crop=256,
        lr=1e-3,
        lr_step=10,
        lr_gamma=0.5,
        val_fraction=0.1,
        ernet={"n_feats": 16, "n_resgroups": 2, "n_resblocks": 2, "reduction": 4},
    ),
    "published": Preset(
        epochs=100,
        steps_per_epoch=100,
        batch_size=2,
        crop=256,
        lr=1e-4,
        lr_step=20,
        lr_gamma=0.5,
        val_fraction=0.2,
        ernet={"n_feats": 64, "n_resgroups": 5, "n_resblocks": 10, "reduction": 16},
    ),
}
