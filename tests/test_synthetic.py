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
