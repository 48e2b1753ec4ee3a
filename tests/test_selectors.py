"""Tests for midnite.visualization.selectors: masks known by hand, fast paths, errors."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import midnite
from midnite import objectives as O
from midnite.engine.objectives import Objective
from midnite.visualization.selectors import (
    ChannelSplit,
    GroupSplit,
    Identity,
    LayerSplit,
    NeuronSelector,
    NeuronSplit,
    SimpleSelector,
    SpatialSplit,
    SplitSelector,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _group_split() -> GroupSplit:
    # 2 groups over a (2, 2, 3) layer
    channel = torch.tensor([[1.0, 0.5], [0.0, 2.0]])
    spatial = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]],
            [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
        ]
    )
    return GroupSplit(channel, spatial)


# ---------------------------------------------------------------------------------------------
# split masks, known by hand


@pytest.mark.parametrize(
    ("split", "index", "size", "expected"),
    [
        (NeuronSplit(), [0, 1, 2], (1, 2, 3), [[[0, 0, 0], [0, 0, 1]]]),
        (NeuronSplit(), [1, 0, 1], (2, 2, 2), [[[0, 0], [0, 0]], [[0, 1], [0, 0]]]),
        (NeuronSplit(), [2], (4,), [0, 0, 1, 0]),
        (Identity(), [], (1, 2, 3), [[[1, 1, 1], [1, 1, 1]]]),
        (Identity(), [], (3,), [1, 1, 1]),
        (ChannelSplit(), [1], (2, 2, 2), [[[0, 0], [0, 0]], [[1, 1], [1, 1]]]),
        (ChannelSplit(), [0], (1, 2, 2), [[[1, 1], [1, 1]]]),  # 1 channel keeps its dim
        (ChannelSplit(), [3], (5,), [0, 0, 0, 1, 0]),  # a flat channel is one element
        (SpatialSplit(), [1, 0], (2, 2, 2), [[[0, 0], [1, 0]], [[0, 0], [1, 0]]]),
        (SpatialSplit(), [0, 2], (1, 2, 3), [[[0, 0, 1], [0, 0, 0]]]),
        # negative indices count from the end, as in Python
        (NeuronSplit(), [-1, -1, 0], (2, 2, 2), [[[0, 0], [0, 0]], [[0, 0], [1, 0]]]),
        (ChannelSplit(), [-2], (3,), [0, 1, 0]),
        (SpatialSplit(), [-2, -1], (1, 2, 2), [[[0, 1], [0, 0]]]),
    ],
)
def test_split_masks(split, index, size, expected):
    mask = split.get_mask(index, size)
    assert mask.shape == torch.Size(size)
    assert mask.dtype == torch.get_default_dtype()
    assert torch.equal(mask, torch.tensor(expected, dtype=mask.dtype))


def test_group_split_mask_is_weighted_product():
    split = _group_split()
    expected0 = torch.tensor(
        [[[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]], [[0.5, 0.0, 0.0], [0.0, 0.0, 1.5]]]
    )
    expected1 = torch.tensor([[[0.0] * 3] * 2, [[1.0] * 3] * 2])
    assert torch.equal(split.get_mask([0], (2, 2, 3)), expected0)
    assert torch.equal(split.get_mask([1], (2, 2, 3)), expected1)
    assert torch.equal(split.get_mask([-1], (2, 2, 3)), expected1)
    masks = split.get_split((2, 2, 3))
    assert len(masks) == 2
    assert torch.equal(masks[0], expected0)
    assert torch.equal(masks[1], expected1)


def test_get_mask_device_and_dtype():
    mask = ChannelSplit().get_mask([0], (2, 1, 1), dtype=torch.float64, device="cpu")
    assert mask.dtype == torch.float64
    assert mask.device.type == "cpu"
    assert torch.equal(mask, torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64))
    with midnite.device("cpu"):
        assert NeuronSplit().get_mask([0], (2,)).device == torch.device("cpu")
    group = _group_split().get_mask([0], (2, 2, 3), dtype=torch.float16)
    assert group.dtype == torch.float16


# ---------------------------------------------------------------------------------------------
# get_split


def test_neuron_get_split_order_and_contents():
    masks = NeuronSplit().get_split((1, 1, 2))
    assert len(masks) == 2
    assert torch.equal(masks[0], torch.tensor([[[1.0, 0.0]]]))
    assert torch.equal(masks[1], torch.tensor([[[0.0, 1.0]]]))
    masks = NeuronSplit().get_split((2, 2, 3))
    assert len(masks) == 12
    assert torch.equal(torch.stack(masks).sum(0), torch.ones(2, 2, 3))  # a partition
    assert masks[7][1, 0, 1] == 1  # row-major order: 7 = 1*6 + 0*3 + 1


def test_channel_get_split():
    masks = ChannelSplit().get_split((3, 2, 2))
    assert len(masks) == 3
    for c, mask in enumerate(masks):
        expected = torch.zeros(3, 2, 2)
        expected[c] = 1
        assert torch.equal(mask, expected)
    assert len(ChannelSplit().get_split((4,))) == 4


def test_spatial_get_split():
    masks = SpatialSplit().get_split((2, 2, 3))
    assert len(masks) == 6
    assert torch.equal(masks[4], SpatialSplit().get_mask([1, 1], (2, 2, 3)))
    assert torch.equal(torch.stack(masks).sum(0), torch.ones(2, 2, 3))


def test_identity_get_split():
    masks = Identity().get_split((1, 2, 3))
    assert len(masks) == 1
    assert torch.equal(masks[0], torch.ones(1, 2, 3))


# ---------------------------------------------------------------------------------------------
# invert, equality, repr


def test_invert():
    assert isinstance(NeuronSplit().invert(), Identity)
    assert isinstance(Identity().invert(), NeuronSplit)
    assert isinstance(ChannelSplit().invert(), SpatialSplit)
    assert isinstance(SpatialSplit().invert(), ChannelSplit)
    assert NeuronSplit().invert().invert() == NeuronSplit()
    assert ChannelSplit() != SpatialSplit()
    with pytest.raises(NotImplementedError, match="GroupSplit has no inverse"):
        _group_split().invert()


def test_repr():
    assert repr(ChannelSplit()) == "ChannelSplit()"
    assert repr(SplitSelector(ChannelSplit(), [1])) == "SplitSelector(ChannelSplit(), [1])"
    assert (
        repr(SplitSelector(NeuronSplit(), (0, 1, 2))) == "SplitSelector(NeuronSplit(), [0, 1, 2])"
    )
    assert repr(SplitSelector(Identity(), [])) == "SplitSelector(Identity(), [])"
    assert repr(_group_split()) == "GroupSplit(2 groups over (C, H, W)=(2, 2, 3))"
    mask = torch.zeros(2, 3, 3, dtype=torch.bool)
    mask[0, :2, :2] = True
    assert (
        repr(SimpleSelector(mask))
        == "SimpleSelector(binary mask of shape (2, 3, 3), 4/18 selected)"
    )
    assert "weighted" in repr(SimpleSelector(torch.tensor([0.5, 0.0])))


# ---------------------------------------------------------------------------------------------
# select_mean: equals sum(mask * act) / sum(mask), differentiable with gradient mask / sum(mask)


def _selectors_3d() -> list[NeuronSelector]:
    weights = torch.rand(2, 3, 4, generator=_gen(1))
    weights[0] = 0
    return [
        SplitSelector(NeuronSplit(), [1, 2, 3]),
        SplitSelector(NeuronSplit(), [0, -1, 0]),
        SplitSelector(ChannelSplit(), [1]),
        SplitSelector(SpatialSplit(), [2, 1]),
        SplitSelector(Identity(), []),
        SplitSelector(_group_split_234(), [0]),
        SimpleSelector(torch.rand(2, 3, 4, generator=_gen(2)) > 0.5),
        SimpleSelector(weights),
        SimpleSelector(torch.tensor([[[0.0]], [[2.0]]])),  # broadcasts over (H, W)
    ]


def _group_split_234() -> GroupSplit:
    return GroupSplit(torch.tensor([[0.2, 1.0]]), torch.rand(1, 3, 4, generator=_gen(3)))


@pytest.mark.parametrize("selector", _selectors_3d(), ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_select_mean_matches_mask_formula(selector, dtype):
    size = (2, 3, 4)
    act = torch.randn(3, *size, generator=_gen(4), dtype=dtype).requires_grad_()
    mask = selector.get_mask(size, dtype=dtype)
    expected = (mask * act).flatten(1).sum(1) / mask.sum()
    out = selector.select_mean(act)
    assert out.shape == (3,)
    assert out.dtype == dtype
    torch.testing.assert_close(out, expected.detach())
    out.sum().backward()
    expected_grad = (mask / mask.sum()).expand(3, *size)
    torch.testing.assert_close(act.grad, expected_grad)


@pytest.mark.parametrize(
    "selector",
    [
        SplitSelector(NeuronSplit(), [3]),
        SplitSelector(NeuronSplit(), [-1]),
        SplitSelector(ChannelSplit(), [0]),
        SplitSelector(Identity(), []),
        SimpleSelector(torch.tensor([1.0, 0.0, 2.0, 0.0, 0.5])),
        SimpleSelector(torch.tensor([True, False, True, False, False])),
    ],
    ids=repr,
)
def test_select_mean_flat_layer(selector):
    act = torch.randn(3, 5, generator=_gen(5)).requires_grad_()
    mask = selector.get_mask((5,))
    out = selector.select_mean(act)
    assert out.shape == (3,)
    torch.testing.assert_close(out, ((mask * act).sum(1) / mask.sum()).detach())
    out.sum().backward()
    torch.testing.assert_close(act.grad, (mask / mask.sum()).expand(3, 5))


def test_select_mean_known_values():
    act = torch.arange(24.0).reshape(1, 2, 3, 4)  # act[0, c, y, x] = 12c + 4y + x
    assert SplitSelector(NeuronSplit(), [1, 2, 3]).select_mean(act).item() == 23.0
    assert SplitSelector(ChannelSplit(), [1]).select_mean(act).item() == 17.5  # mean of 12..23
    assert SplitSelector(SpatialSplit(), [0, 1]).select_mean(act).item() == 7.0  # (1 + 13) / 2
    assert SplitSelector(Identity(), []).select_mean(act).item() == 11.5
    weights = torch.zeros(2, 3, 4)
    weights[0, 0, 0] = 3.0  # value 0
    weights[1, 0, 0] = 1.0  # value 12
    assert SimpleSelector(weights).select_mean(act).item() == pytest.approx(3.0)
    classes = torch.tensor([[0.1, 0.7, 0.2]])
    assert SplitSelector(NeuronSplit(), [1]).select_mean(classes).item() == pytest.approx(0.7)


def test_select_mean_one_channel_layer():
    act = torch.randn(3, 1, 2, 2, generator=_gen(6))
    selector = SplitSelector(ChannelSplit(), [0])
    assert selector.get_mask((1, 2, 2)).shape == (1, 2, 2)
    torch.testing.assert_close(selector.select_mean(act), act.flatten(1).mean(1))
    spatial = SplitSelector(SpatialSplit(), [1, 0])
    torch.testing.assert_close(spatial.select_mean(act), act[:, 0, 1, 0])
    with pytest.raises(IndexError, match="channel index 1 out of range"):
        SplitSelector(ChannelSplit(), [1]).validate((1, 2, 2))


def test_fast_paths_build_no_mask():
    act = torch.randn(2, 2, 3, 4, generator=_gen(7))
    for split, index in [
        (NeuronSplit(), [0, 0, 0]),
        (ChannelSplit(), [1]),
        (SpatialSplit(), [0, 0]),
        (Identity(), []),
    ]:
        selector = SplitSelector(split, index)
        selector.select_mean(act)
        selector.select_mean(act)
        assert selector._cache == {}, split
    simple = SimpleSelector(torch.ones(2, 3, 4))
    simple.select_mean(act)
    weights = simple._mean_objective._flat_weights((2, 3, 4), act.device, act.dtype)
    simple.select_mean(act)  # the normalized weights are built once, not every call
    assert simple._mean_objective._flat_weights((2, 3, 4), act.device, act.dtype) is weights
    assert simple._cache == {}  # and no dense mask of the selector's own


# ---------------------------------------------------------------------------------------------
# a selector on a layer is an engine objective


def test_selectors_give_engine_objectives():
    group = _group_split_234()
    cases = [
        (SplitSelector(ChannelSplit(), [1]), "channel('x', 1)"),
        (SplitSelector(NeuronSplit(), [1, 2, -1]), "element('x', [1, 2, -1])"),
        (SplitSelector(SpatialSplit(), [2, 1]), "spatial('x', y=2, x=1)"),
        (SplitSelector(Identity(), []), "mean('x')"),
        (SplitSelector(group, [0]), "mask('x', <weights of shape (2, 3, 4)>)"),
        (SimpleSelector(torch.ones(2, 1, 1)), "mask('x', <weights of shape (2, 1, 1)>)"),
    ]
    act = torch.randn(3, 2, 3, 4, generator=_gen(13))
    for selector, text in cases:
        obj = selector.objective("x")
        assert isinstance(obj, Objective) and obj.layers == ("x",)
        assert repr(obj) == text
        obj.validate({"x": (2, 3, 4)})
        assert torch.equal(obj({"x": act}), selector.select_mean(act))
    assert selector.objective().layers == ("",)  # default: the model's output


def test_selector_objective_is_the_engine_constructor():
    act = torch.randn(2, 4, 3, 3, generator=_gen(14))
    pairs = [
        (SplitSelector(ChannelSplit(), [2]), O.channel("a", 2)),
        (SplitSelector(NeuronSplit(), [1, 0, 2]), O.neuron("a", 1, y=0, x=2)),
        (SplitSelector(SpatialSplit(), [1, 1]), O.spatial("a", 1, 1)),
        (SplitSelector(Identity(), []), O.mean("a")),
    ]
    for selector, engine in pairs:
        assert torch.equal(selector.objective("a")({"a": act}), engine({"a": act}))


def test_objective_validates_against_the_layer():
    with pytest.raises(IndexError, match=r"channel index 5 out of range for layer 'x'"):
        SplitSelector(ChannelSplit(), [5]).objective("x").validate({"x": (3, 2, 2)})
    with pytest.raises(ValueError, match=r"needs 3 entries.*\(3, 2, 2\)"):
        SplitSelector(NeuronSplit(), [1]).objective("x").validate({"x": (3, 2, 2)})
    with pytest.raises(ValueError, match=r"\(C, H, W\) layer; layer 'f' has shape \(10,\)"):
        SplitSelector(SpatialSplit(), [0, 0]).objective("f").validate({"f": (10,)})
    with pytest.raises(ValueError, match=r"do not fit layer 'x'"):
        SimpleSelector(torch.ones(2, 3, 3)).objective("x").validate({"x": (2, 4, 4)})
    with pytest.raises(ValueError, match=r"do not fit layer 'x'"):
        SplitSelector(_group_split(), [0]).objective("x").validate({"x": (2, 4, 4)})
    with pytest.raises(IndexError, match=r"group index 2 out of range for a GroupSplit"):
        SplitSelector(_group_split(), [2]).objective("x")  # groups are known without the layer
    with pytest.raises(TypeError, match="layer must be a str"):
        SplitSelector(ChannelSplit(), [0]).objective(3)


# ---------------------------------------------------------------------------------------------
# one rule for indices in both APIs


def test_negative_index_is_the_same_neuron_in_both_apis():
    act = torch.randn(2, 5, 3, 4, generator=_gen(15))
    last = SplitSelector(ChannelSplit(), [-1])
    assert torch.equal(last.select_mean(act), SplitSelector(ChannelSplit(), [4]).select_mean(act))
    assert torch.equal(last.objective("x")({"x": act}), O.channel("x", -1)({"x": act}))
    assert torch.equal(O.channel("x", -1)({"x": act}), O.channel("x", 4)({"x": act}))
    corner = SplitSelector(NeuronSplit(), [-2, -1, -1])
    assert torch.equal(corner.select_mean(act), act[:, 3, 2, 3])
    assert torch.equal(O.neuron("x", -2, y=-1, x=-1)({"x": act}), act[:, 3, 2, 3])


@pytest.mark.parametrize("index", [5, -6])
def test_out_of_range_raises_the_same_in_both_apis(index):
    match = r"channel index -?\d out of range .* 5 channels \(valid: 0\.\.4, or -5\.\.-1"
    with pytest.raises(IndexError, match=match):
        SplitSelector(ChannelSplit(), [index]).validate((5, 3, 4))
    with pytest.raises(IndexError, match=match):
        SplitSelector(ChannelSplit(), [index]).objective("x").validate({"x": (5, 3, 4)})
    with pytest.raises(IndexError, match=match):
        O.channel("x", index).validate({"x": (5, 3, 4)})


def test_select_mean_follows_activation_dtype():
    act = torch.randn(2, 2, 3, 4, generator=_gen(8)).to(torch.bfloat16)
    for selector, expected in [
        (SimpleSelector(torch.ones(2, 3, 4)), act.float().flatten(1).mean(1)),
        (SplitSelector(ChannelSplit(), [0]), act.float()[:, 0].flatten(1).mean(1)),
    ]:
        out = selector.select_mean(act)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)


def test_select_mean_follows_size_changes():
    # the layer grows when the image is resized between iterations
    selector = SimpleSelector(torch.tensor([[[1.0]], [[0.0]]]))
    small = torch.randn(1, 2, 2, 2, generator=_gen(9))
    large = torch.randn(1, 2, 5, 5, generator=_gen(10))
    torch.testing.assert_close(selector.select_mean(small), small[:, 0].flatten(1).mean(1))
    torch.testing.assert_close(selector.select_mean(large), large[:, 0].flatten(1).mean(1))
    neuron = SplitSelector(NeuronSplit(), [0, -1, -1])
    assert neuron.select_mean(small).item() == small[0, 0, 1, 1].item()
    assert neuron.select_mean(large).item() == large[0, 0, 4, 4].item()


def test_select_mean_rejects_unbatched_and_non_tensors():
    selector = SplitSelector(NeuronSplit(), [0])
    with pytest.raises(ValueError, match=r"\(B, \*size\).*got shape \(5,\)"):
        selector.select_mean(torch.zeros(5))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor, got list"):
        selector.select_mean([[1.0, 2.0]])


# ---------------------------------------------------------------------------------------------
# caching


def test_mask_is_cached_per_size_device_dtype():
    selector = SplitSelector(ChannelSplit(), [1])
    first = selector.get_mask((2, 3, 3), device="cpu")
    assert selector.get_mask((2, 3, 3), device="cpu") is first
    assert selector.get_mask(torch.Size([2, 3, 3])) is first
    assert selector.get_mask([2, 3, 3], dtype=torch.float64) is not first
    assert selector.get_mask((2, 4, 4)) is not first
    simple = SimpleSelector(torch.ones(2, 3))
    assert simple.get_mask((2, 3)) is simple.get_mask((2, 3))


def test_cache_is_bounded():
    selector = SimpleSelector(torch.ones(1, 1, 1))
    for n in range(1, 40):
        selector.get_mask((1, n, n))
    assert len(selector._cache) <= 16


def test_copy_and_pickle_drop_cache():
    selector = SplitSelector(_group_split(), [0])
    act = torch.randn(2, 2, 2, 3, generator=_gen(11))
    expected = selector.select_mean(act)
    for clone in (copy.deepcopy(selector), pickle.loads(pickle.dumps(selector))):
        assert clone._cache == {}
        torch.testing.assert_close(clone.select_mean(act), expected)


# ---------------------------------------------------------------------------------------------
# index forms


@pytest.mark.parametrize("index", [[1], (1,), 1, torch.tensor([1]), torch.tensor(1)])
def test_index_forms(index):
    selector = SplitSelector(ChannelSplit(), index)
    assert selector.index == (1,)
    assert torch.equal(selector.get_mask((3,)), torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    ("index", "match"),
    [
        ([1.5], r"index entries must be ints, got 1.5 \(float\)"),
        ([True], r"got True \(bool\)"),
        ("a", r"index entries must be ints, got 'a'"),
        (torch.tensor([1.0]), "index tensor must hold integers, got dtype torch.float32"),
    ],
)
def test_index_type_errors(index, match):
    with pytest.raises(TypeError, match=match):
        SplitSelector(ChannelSplit(), index)


def test_split_must_be_an_instance():
    with pytest.raises(TypeError, match=r"got the class ChannelSplit; write ChannelSplit\(\)"):
        SplitSelector(ChannelSplit, [1])
    with pytest.raises(TypeError, match="must be a LayerSplit such as ChannelSplit"):
        SplitSelector("channel", [1])


# ---------------------------------------------------------------------------------------------
# errors: index length, range, shapes, empty selections


@pytest.mark.parametrize(
    ("split", "index", "match"),
    [
        (
            ChannelSplit(),
            [1, 2],
            r"ChannelSplit\(\) needs an index of 1 entry \(\[c\]\), got \[1, 2\]",
        ),
        (SpatialSplit(), [1], r"needs an index of 2 entries \(\[y, x\]\), got \[1\]"),
        (Identity(), [0], r"Identity\(\) needs an index of 0 entries \(\[\]\), got \[0\]"),
        (NeuronSplit(), [], r"needs an index of 3 entries"),
        (_group_split(), [0, 1], r"needs an index of 1 entry \(\[g\]\), got \[0, 1\]"),
    ],
)
def test_wrong_index_length_at_construction(split, index, match):
    with pytest.raises(ValueError, match=match):
        SplitSelector(split, index)
    if index:  # the split itself says the same
        with pytest.raises(ValueError, match=match):
            split.get_mask(index, (2, 2, 3))


def test_neuron_index_length_depends_on_layer():
    with pytest.raises(
        ValueError,
        match=r"3 entries \(\[c, y, x\]\) for a layer of shape "
        r"\(2, 3, 4\), got \[1\]",
    ):
        SplitSelector(NeuronSplit(), [1]).validate((2, 3, 4))
    with pytest.raises(
        ValueError,
        match=r"1 entry \(\[n\]\) for a layer of shape \(10,\), "
        r"got \[0, 0, 0\]",
    ):
        NeuronSplit().get_mask([0, 0, 0], (10,))


@pytest.mark.parametrize(
    ("split", "index", "size", "match"),
    [
        (
            ChannelSplit(),
            [70],
            (64, 2, 2),
            r"channel index 70 out of range for a layer with 64 channels \(valid: 0\.\.63",
        ),
        (ChannelSplit(), [-65], (64, 2, 2), r"channel index -65 out of range.*-64\.\.-1"),
        (NeuronSplit(), [2, 0, 0], (2, 3, 4), r"channel index 2 out of range .* 2 channels"),
        (NeuronSplit(), [0, 3, 0], (2, 3, 4), r"row index 3 out of range .* 3 rows"),
        (NeuronSplit(), [0, 0, 4], (2, 3, 4), r"column index 4 out of range .* 4 columns"),
        (
            NeuronSplit(),
            [1000],
            (1000,),
            r"neuron index 1000 out of range .* 1000 neurons "
            r"\(valid: 0\.\.999",
        ),
        (SpatialSplit(), [3, 0], (2, 3, 4), r"row index 3 out of range"),
        (SpatialSplit(), [0, -5], (2, 3, 4), r"column index -5 out of range.*-4\.\.-1"),
        (NeuronSplit(), [0, 7], (2, 3), r"position index 7 out of range for dimension 1 of a"),
        (ChannelSplit(), [5], (5,), r"channel index 5 out of range for a layer with 5 channels"),
        (
            _group_split(),
            [2],
            (2, 2, 3),
            r"group index 2 out of range for a GroupSplit with 2 "
            r"groups \(valid: 0\.\.1",
        ),
    ],
)
def test_index_out_of_range(split, index, size, match):
    selector = SplitSelector(split, index)  # range is only known once the layer is
    with pytest.raises(IndexError, match=match):
        selector.validate(size)
    with pytest.raises(IndexError, match=match):
        split.get_mask(index, size)
    with pytest.raises(IndexError, match=match):
        selector.select_mean(torch.zeros(1, *size))


def test_spatial_split_on_flat_layer():
    match = r"SpatialSplit\(\) needs a \(C, H, W\) layer, got a layer of shape \(10,\)"
    with pytest.raises(ValueError, match=match):
        SplitSelector(SpatialSplit(), [0, 0]).validate((10,))
    with pytest.raises(ValueError, match=match):
        SpatialSplit().get_mask([0, 0], (10,))
    with pytest.raises(ValueError, match=match):
        SpatialSplit().get_split((10,))


def test_simple_selector_shape_mismatch():
    selector = SimpleSelector(torch.ones(2, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"mask of shape \(2, 3, 3\) does not fit a layer of "
        r"per-image shape \(2, 4, 4\)",
    ):
        selector.validate((2, 4, 4))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3, 3\).*\(18,\)"):
        selector.validate((18,))
    with pytest.raises(ValueError, match="does not fit"):
        selector.select_mean(torch.zeros(1, 3, 3, 3))
    selector.validate((2, 3, 3))  # fits


def test_simple_selector_all_zero_mask():
    with pytest.raises(ValueError, match="nothing is selected: all 18 entries of mask"):
        SimpleSelector(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="nothing is selected"):
        SimpleSelector(torch.zeros(4, dtype=torch.bool))


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [
        (torch.tensor([1.0, -0.5]), ValueError, r"non-negative, got minimum -0.5"),
        (torch.tensor([1.0, float("nan")]), ValueError, "must be finite"),
        (torch.tensor(1.0), ValueError, "0-d"),
        (torch.tensor([1j]), TypeError, "bool or real"),
        (object(), TypeError, "mask must be a tensor"),
    ],
)
def test_simple_selector_bad_masks(mask, error, match):
    with pytest.raises(error, match=match):
        SimpleSelector(mask)


def test_simple_selector_keeps_its_own_copy():
    mask = torch.ones(3)
    selector = SimpleSelector(mask)
    mask.zero_()
    assert selector.select_mean(torch.ones(1, 3)).item() == 1.0


def test_group_split_errors():
    split = _group_split()
    with pytest.raises(ValueError, match=r"fit a layer of shape \(2, 2, 3\), got .* \(2, 4, 4\)"):
        split.get_mask([0], (2, 4, 4))
    with pytest.raises(ValueError, match=r"fit a layer of shape \(2, 2, 3\), got .* \(12,\)"):
        SplitSelector(split, [0]).validate((12,))
    zero_group = GroupSplit(torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.ones(2, 1, 1))
    with pytest.raises(ValueError, match="group 1 selects nothing"):
        SplitSelector(zero_group, [1]).select_mean(torch.ones(1, 2, 1, 1))
    with pytest.raises(ValueError, match="same number of groups G"):
        GroupSplit(torch.ones(2, 3), torch.ones(3, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"channel_factors must be a non-empty tensor of shape "
        r"\(G, C\), got shape \(3,\)",
    ):
        GroupSplit(torch.ones(3), torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match=r"spatial_factors must be non-negative"):
        GroupSplit(torch.ones(1, 3), -torch.ones(1, 4, 4))


@pytest.mark.parametrize(
    ("size", "error"),
    [((), ValueError), ((2, 0, 3), ValueError), (torch.zeros(3), TypeError), (5, TypeError)],
)
def test_bad_sizes(size, error):
    with pytest.raises(error, match="size must"):
        ChannelSplit().get_mask([0], size)


def test_never_nan_for_valid_selections():
    act = torch.zeros(2, 1, 1, 1)
    for selector in _selectors_1x1():
        out = selector.select_mean(act)
        assert torch.isfinite(out).all()


def _selectors_1x1() -> list[NeuronSelector]:
    return [
        SplitSelector(NeuronSplit(), [0, 0, 0]),
        SplitSelector(ChannelSplit(), [0]),
        SplitSelector(SpatialSplit(), [0, 0]),
        SplitSelector(Identity(), []),
        SimpleSelector(torch.tensor([[[1e-30]]])),
    ]


def test_custom_split_uses_region_fast_path():
    class RowSplit(LayerSplit):
        """Row y across all channels and columns."""

        _length, _form = 1, "([y])"

        def _resolve(self, index, size):
            self._check_length(index)
            return (index[0] % size[1],)

        def _region(self, index, size):
            return (slice(None), index[0])

        def _indices(self, size):
            return [(y,) for y in range(size[1])]

        def invert(self):
            raise NotImplementedError

    act = torch.randn(2, 2, 3, 4, generator=_gen(12))
    selector = SplitSelector(RowSplit(), [1])
    torch.testing.assert_close(selector.select_mean(act), act[:, :, 1].flatten(1).mean(1))
    assert len(RowSplit().get_split((2, 3, 4))) == 3
    # no engine counterpart: the objective checks by the split's rules and computes by its region
    obj = selector.objective("x")
    assert repr(obj) == "selected(SplitSelector(RowSplit(), [1]), layer='x')"
    obj.validate({"x": (2, 3, 4)})
    torch.testing.assert_close(obj({"x": act}), act[:, :, 1].flatten(1).mean(1))
    assert selector._cache == {}


def test_custom_selector_subclass_is_an_objective_through_its_mask():
    class Corners(NeuronSelector):
        """The four corners of every channel."""

        def validate(self, size):
            if len(size) != 3:
                raise ValueError(f"Corners needs a (C, H, W) layer, got {tuple(size)}")

        def _build_mask(self, size):
            mask = torch.zeros(size)
            mask[:, [0, 0, -1, -1], [0, -1, 0, -1]] = 1
            return mask

    act = torch.randn(2, 2, 3, 4, generator=_gen(16))
    expected = act[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].flatten(1).mean(1)
    selector = Corners()
    torch.testing.assert_close(selector.select_mean(act), expected)
    obj = selector.objective("x")
    obj.validate({"x": (2, 3, 4)})
    torch.testing.assert_close(obj({"x": act}), expected)
    with pytest.raises(ValueError, match="Corners needs"):
        obj.validate({"x": (5,)})
