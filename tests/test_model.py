"""The ERNet module computes the published function and loads published checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from ernet.runtime.errors import ModelError  # noqa: E402
from ernet.training.checkpoint import load_checkpoint  # noqa: E402
from ernet.training.models.ernet import ERNet, ERNetConfig, infer_config  # noqa: E402

from conftest import TINY_OPTIONS  # noqa: E402

TINY = ERNetConfig(**TINY_OPTIONS)


def test_published_size_has_published_parameter_count() -> None:
    assert sum(p.numel() for p in ERNet().parameters()) == 3_944_138


def test_parameter_names_are_the_published_ones() -> None:
    cfg = ERNetConfig()
    names = set(ERNet(cfg).state_dict())
    expected = {
        "head.0.weight",
        "head.0.bias",
        "tail.0.weight",
        "tail.0.bias",
        f"body.{cfg.n_resgroups}.weight",
        f"body.{cfg.n_resgroups}.bias",
    }
    for g in range(cfg.n_resgroups):
        expected |= {f"body.{g}.body.{cfg.n_resblocks}.weight", f"body.{g}.body.{cfg.n_resblocks}.bias"}
        for b in range(cfg.n_resblocks):
            p = f"body.{g}.body.{b}.body"
            for leaf in ("0", "2", "3.conv_du.0", "3.conv_du.2"):
                expected |= {f"{p}.{leaf}.weight", f"{p}.{leaf}.bias"}
    assert names == expected


def reference_forward(state: dict, cfg: ERNetConfig, x: torch.Tensor) -> torch.Tensor:
    """The published function written out from its description, weights by name."""
    conv = lambda t, k: F.conv2d(t, state[f"{k}.weight"], state[f"{k}.bias"], padding="same")  # noqa: E731
    head = conv(x, "head.0")
    y = head
    for g in range(cfg.n_resgroups):
        group_in = y
        for b in range(cfg.n_resblocks):
            p = f"body.{g}.body.{b}.body"
            r = conv(F.relu(conv(y, f"{p}.0")), f"{p}.2")
            a = torch.sigmoid(
                conv(F.relu(conv(r.mean((2, 3), keepdim=True), f"{p}.3.conv_du.0")), f"{p}.3.conv_du.2")
            )
            y = r * a + y
        y = conv(y, f"body.{g}.body.{cfg.n_resblocks}") + group_in
    y = conv(y, f"body.{cfg.n_resgroups}") + head
    return conv(y, "tail.0")


@pytest.mark.parametrize("shape", [(1, 1, 33, 47), (2, 1, 64, 64)])
def test_module_computes_the_published_function(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = ERNet(TINY).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        out = model(x)
        ref = reference_forward(model.state_dict(), TINY, x)
    assert out.shape == (shape[0], TINY.n_classes, *shape[2:])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cfg",
    [
        ERNetConfig(),
        TINY,
        ERNetConfig(in_channels=2, n_classes=4, n_feats=16, n_resgroups=3, n_resblocks=1, reduction=8),
    ],
)
def test_config_is_inferred_from_weights(cfg: ERNetConfig) -> None:
    assert infer_config(ERNet(cfg).state_dict()) == cfg


@pytest.mark.parametrize("layout", ["original", "dataparallel", "bare"])
def test_published_checkpoint_formats_load(layout: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ERNet(TINY)
    state = model.state_dict()
    if layout == "dataparallel":
        state = {f"module.{k}": v for k, v in state.items()}
    obj = (
        state
        if layout == "bare"
        else {"epoch": 7, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    )
    torch.save(obj, tmp_path / "ck.pth")
    loaded = load_checkpoint(tmp_path / "ck.pth")
    assert ERNetConfig.of(loaded.metadata.architecture, loaded.metadata.contract) == TINY
    normalization = loaded.metadata.contract.normalization
    assert normalization.mode == "scale" and normalization.scale == 255
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x), rtol=0, atol=0)


def test_loading_refuses_non_ernet_and_unsafe_files(tmp_path: Path) -> None:
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "other.pt")) + ".*not an ERNet"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    torch.save({"state_dict": ERNet(TINY).state_dict(), "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
