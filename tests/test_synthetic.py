"""The synthetic generator: seeded, labelled, and a moving time-lapse."""

from __future__ import annotations

import numpy as np

from ernet.training.synthetic import SyntheticConfig, generate, generate_stack


def test_seeded_and_deterministic() -> None:
    a, b, c = generate(5), generate(5), generate(6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_images_and_labels_are_plausible() -> None:
    frame = generate(1, SyntheticConfig(height=200, width=240, bit_depth=16))
    assert frame.image.dtype == np.uint16 and frame.image.shape == (200, 240)
    assert set(np.unique(frame.mask)) <= {0, 1}
    assert 0.02 < frame.mask.mean() < 0.6  # a network, not empty, not solid
    er, background = frame.image[frame.mask == 1].mean(), frame.image[frame.mask == 0].mean()
    assert er > background  # tubules are brighter than their surroundings


def test_time_lapse_moves_a_little() -> None:
    frames = generate_stack(4, seed=2, config=SyntheticConfig(height=128, width=128))
    masks = np.stack([f.mask for f in frames]).astype(bool)
    for before, after in zip(masks, masks[1:], strict=False):
        iou = (before & after).sum() / (before | after).sum()
        assert 0.1 < iou < 1.0  # the network moves, and stays recognisably the same


def test_generator_keeps_its_graph() -> None:
    frame = generate(4, SyntheticConfig(height=256, width=256))
    g = frame.graph
    assert (
        g.nodes.shape[1] == 2 and g.edges.shape[1] == 2 and len(g.lengths) == len(g.edges) == len(g.labelled)
    )
    assert g.edges.min() >= 0 and g.edges.max() < len(g.nodes)
    chord = np.linalg.norm(g.nodes[g.edges[:, 0]] - g.nodes[g.edges[:, 1]], axis=1)
    assert (g.lengths >= chord - 1.0).all()  # a curve is never shorter than its chord (sampling aside)
    assert (g.lengths <= 3 * chord + 2.0).all() and np.median(g.lengths / chord) < 1.15  # gently bent
    assert ((g.labelled >= 0) & (g.labelled <= 1)).all() and (g.labelled > 0.9).sum() > 10
    # a fully labelled edge runs over ER: its end points lie on the mask
    full = g.edges[g.labelled == 1.0]
    ends = np.rint(g.nodes[full.ravel()]).astype(int)
    inside = (ends >= 0).all(axis=1) & (ends[:, 0] < 256) & (ends[:, 1] < 256)
    assert frame.mask[ends[inside, 0], ends[inside, 1]].mean() > 0.9


def test_empty_fields_are_background_and_leave_other_stacks_alone() -> None:
    from ernet.runtime.preprocess import noise_level

    config = SyntheticConfig(height=128, width=128, empty_fields=0.5)
    stacks = {seed: generate_stack(2, seed, config) for seed in range(12)}
    empty = [seed for seed, frames in stacks.items() if not any(f.mask.any() for f in frames)]
    assert 2 <= len(empty) <= 10  # about half
    plain = SyntheticConfig(height=128, width=128)
    for seed, frames in stacks.items():
        if seed in empty:
            for frame in frames:
                assert frame.image.std() > 0 and noise_level(frame.image) > 0  # noise, not a blank
                assert len(frame.graph.edges) == 0
            assert not np.array_equal(frames[0].image, frames[1].image)  # fresh noise per frame
        else:  # the same frames as without empty fields: emptiness has its own random stream
            np.testing.assert_array_equal(frames[0].image, generate_stack(1, seed, plain)[0].image)
    assert SyntheticConfig().empty_fields == 0


#: A cell whose sheets stay below saturation, with SBT beside them and little haze.
VISIBLE_SHEETS = SyntheticConfig(
    height=384,
    width=384,
    classes="four",
    nucleus_radius=(0.12, 0.12),
    sheet_extent=(1.0, 1.0),
    sheet_signal=(1.5, 1.5),
    signal=(60.0, 60.0),
    glow=(0.02, 0.02),
    haze=(5.0, 5.0),
    fenestrations=(0.0, 0.0),
    sbt_band=(30.0, 30.0),
    sbt_cover=(0.9, 0.9),
)


def test_four_class_labels_match_the_image() -> None:
    from scipy import ndimage

    frame = generate(3, VISIBLE_SHEETS)
    assert frame.mask.dtype == np.uint8 and set(np.unique(frame.mask)) == {0, 1, 2, 3}
    image = ndimage.gaussian_filter(frame.image.astype(float), 2)
    level = {k: np.median(image[frame.mask == k]) for k in range(4)}
    assert level[2] > level[1] > level[0] and level[3] > level[0]  # sheets brightest, then tubules
    # the sheet label is the bright smooth region of the image
    bright = image > (level[2] + level[0]) / 2
    sheet = frame.mask == 2
    assert (bright & sheet).sum() / (bright | sheet).sum() > 0.6
    # the sheets are one region around the nucleus, and SBT lies beside them
    pieces, n = ndimage.label(sheet)
    assert np.bincount(pieces.ravel())[1:].max() > 0.5 * sheet.sum()
    sbt_reach = 30 + 9.0 / 2 + 1  # the band, half the widest label, rounding
    assert (ndimage.distance_transform_edt(~sheet)[frame.mask == 3] <= sbt_reach).all()


def test_fenestrations_darken_sheets_only() -> None:
    from dataclasses import replace

    plain = generate(3, VISIBLE_SHEETS)
    holed = generate(3, replace(VISIBLE_SHEETS, fenestrations=(0.02, 0.02)))
    np.testing.assert_array_equal(plain.mask, holed.mask)  # holes are part of the sheet
    sheet = plain.mask == 2
    assert holed.image[sheet].mean() < 0.95 * plain.image[sheet].mean()


def test_binary_labels_are_the_four_class_network_without_sheets() -> None:
    for seed in range(4):
        four = generate(seed, SyntheticConfig(height=256, width=256, classes="four"))
        binary = generate(seed, SyntheticConfig(height=256, width=256))
        np.testing.assert_array_equal(four.image, binary.image)  # the convention changes labels only
        er = binary.mask == 1
        assert not (er & (four.mask == 2)).any()  # sheets are background in ERNet's labels
        assert np.isin(four.mask[er], (1, 3)).all()  # ER is tubules and SBT


def test_features_switch_off() -> None:
    from dataclasses import replace

    no_sheets = generate(3, replace(VISIBLE_SHEETS, sheet_extent=(0.0, 0.0)))
    assert not (no_sheets.mask == 3).any()  # no sheets, so no SBT beside them
    blob = no_sheets.mask == 2  # only the saturated disc, which four-class labels call sheet
    assert blob.any() and np.median(no_sheets.image[blob]) == 255
    no_sbt = generate(3, replace(VISIBLE_SHEETS, sbt_band=(0.0, 0.0)))
    assert (no_sbt.mask == 2).any() and not (no_sbt.mask == 3).any()


def test_tubules_vary_in_width_and_along_their_length() -> None:
    from dataclasses import replace

    from ernet.training.synthetic.network import NetworkStyle, render_network

    rng = np.random.default_rng(0)
    points = rng.uniform(0, 256, (300, 2))
    style = NetworkStyle(0.9, 0.1, 7, 0.0, 0.0, rng.random((20, 20)), 16.0)

    def drawn(style: NetworkStyle) -> tuple[np.ndarray, np.ndarray]:
        net = render_network(points, np.zeros(len(points), bool), style, (256, 256), np.random.default_rng(1))
        line = net.brightness > 0
        return net.brightness[line], net.width[line]

    brightness, widths = drawn(style)
    assert (widths == 1).all()
    _, spread = drawn(replace(style, width_spread=0.35))
    assert 0.25 < np.log(spread).std() < 0.45 and 0.5 <= spread.min() and spread.max() <= 2.0
    varied, _ = drawn(replace(style, along_variation=0.7))
    assert varied.std() / varied.mean() > 1.3 * brightness.std() / brightness.mean()
