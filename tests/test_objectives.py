"""Objectives: known values on a hand-made activation dict, algebra, repr, validation errors."""

from __future__ import annotations

import math

import pytest
import torch

from midnite import objectives as O
from midnite.engine.objectives import Objective, PerImage, _Sum

# x[b, c, y, xx] = 12 b + 4 c + 2 y + xx: two images, three channels, 2x2 positions
X = torch.arange(24.0).view(2, 3, 2, 2)
FLAT = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def acts(**extra):
    return {"x": X, "f": FLAT, "": FLAT, **extra}


def close(value, expected):
    assert value.shape == (len(expected),)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=value.dtype))


# ------------------------------------------------------------------------------ constructors
def test_neuron_centre_explicit_and_flat():
    close(O.neuron("x", 1)(acts()), [7.0, 19.0])  # centre (1, 1): 4 + 2 + 1
    close(O.neuron("x", 1, y=0, x=1)(acts()), [5.0, 17.0])
    close(O.neuron("x", 2, y=1, x=0)(acts()), [10.0, 22.0])
    close(O.neuron("f", 0)(acts()), [1.0, 4.0])
    assert O.neuron("x", 1).layers == ("x",)


def test_neuron_centre_on_odd_grid():
    act = torch.zeros(1, 1, 3, 5)
    act[0, 0, 1, 2] = 7.0
    close(O.neuron("a", 0)({"a": act}), [7.0])


def test_channel_spatial_deepdream():
    close(O.channel("x", 1)(acts()), [5.5, 17.5])  # mean of 4..7 and 16..19
    close(O.channel("f", 2)(acts()), [3.0, 6.0])
    close(O.spatial("x", 0, 1)(acts()), [5.0, 17.0])  # mean of (1, 5, 9), (13, 17, 21)
    squares0 = sum(k * k for k in range(12)) / 12
    squares1 = sum(k * k for k in range(12, 24)) / 12
    close(O.deepdream("x")(acts()), [squares0, squares1])


def test_class_logit_reads_the_output():
    obj = O.class_logit(2)
    assert obj.layers == ("",)
    close(obj(acts()), [3.0, 6.0])
    close(O.class_logit(1, layer="f")(acts()), [2.0, 5.0])


def test_direction_values():
    close(O.direction("x", [1.0, 0.0, 0.0])(acts()), [1.5, 13.5])  # channel 0's mean
    # normalized to (0.6, 0.8, 0): 0.6 * mean(ch0) + 0.8 * mean(ch1)
    close(O.direction("x", torch.tensor([3.0, 4.0, 0.0]))(acts()), [5.3, 0.6 * 13.5 + 0.8 * 17.5])
    close(O.direction("f", [0.0, 0.0, 2.0])(acts()), [3.0, 6.0])


def test_direction_cosine_power():
    act = torch.tensor([[3.0, 4.0], [1.0, 0.0], [-1.0, 0.0]])
    obj = O.direction("a", [1.0, 0.0], cosine_power=2.0)
    # dot * cos^2: 3 * 0.6^2; 1 * 1; a negative cosine is clamped to 0.01
    close(obj({"a": act}), [3 * 0.36, 1.0, -1.0 * 1e-4])
    # on a (C, H, W) layer the cosine is per position, then the mean over positions
    a = torch.tensor([[[[3.0, 0.0]], [[4.0, 2.0]]]])  # one image, 2 channels, 1x2
    expected = (3.0 * 0.6**3 + 0.0) / 2  # position 1 is orthogonal: dot 0
    close(O.direction("a", [1.0, 0.0], cosine_power=3)({"a": a}), [expected])


def test_direction_vector_from_a_weight_is_detached():
    weight = torch.nn.Linear(3, 4).weight
    obj = O.direction("f", weight[1])
    for _ in range(2):  # a second backward must not go through the vector's graph again
        act = FLAT.clone().requires_grad_(True)
        obj({"f": act}).sum().backward()
        assert act.grad is not None
    assert weight.grad is None


def test_direction_bad_vectors():
    for bad in ([0.0, 0.0], [], [1.0, math.nan]):
        with pytest.raises(ValueError, match="non-zero"):
            O.direction("x", bad)
    with pytest.raises(TypeError):
        O.direction("x", "abc")


def test_diversity_identical_and_orthogonal():
    same = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1)
    close(O.diversity("a")({"a": same}), [-1.0, -1.0, -1.0])
    a = torch.zeros(3, 2, 2, 2)
    a[0, 0] = 1.0  # only channel 0: Gram has one non-zero entry, (0, 0)
    a[1, 0] = 2.0  # the same direction: cosine 1 with image 0
    a[2, 1] = 1.0  # only channel 1: Gram entry (1, 1), orthogonal to both
    close(O.diversity("a")({"a": a}), [-0.5, -0.5, 0.0])
    assert (O.diversity("a")({"a": a[[0, 2]]}) > -1).all()


def test_diversity_errors():
    with pytest.raises(ValueError, match="at least 2"):
        O.diversity("a")({"a": torch.rand(1, 2, 3, 3)})
    with pytest.raises(ValueError, match=r"\(3,\)"):
        O.diversity("f").validate({"f": (3,)})
    O.diversity("x").validate({"x": (3, 2, 2)})


def test_element_mean_and_mask():
    close(O.element("x", (1, 0, 1))(acts()), [5.0, 17.0])
    close(O.element("x", [-1, -1, -1])(acts()), [11.0, 23.0])  # the last of each axis
    close(O.element("f", (2,))(acts()), [3.0, 6.0])
    close(O.mean("x")(acts()), [5.5, 17.5])  # mean of 0..11 and 12..23
    close(O.mean("f")(acts()), [2.0, 5.0])
    weights = torch.zeros(3, 2, 2)
    weights[0, 0, 0] = 3.0  # value 0 (image 0), 12 (image 1)
    weights[2, 1, 1] = 1.0  # value 11, 23
    close(O.mask("x", weights)(acts()), [11.0 / 4, (3 * 12 + 23) / 4])
    # (C, 1, 1) weights broadcast over positions: the weighted mean of channel means
    close(O.mask("x", torch.tensor([[[1.0]], [[0.0]], [[1.0]]]))(acts()), [5.5, 17.5])
    close(O.mask("f", torch.tensor([True, False, True]))(acts()), [2.0, 5.0])


def test_mask_weights_are_built_once_per_shape():
    obj = O.mask("x", torch.ones(3, 1, 1))
    obj(acts())
    first = obj._flat_weights((3, 2, 2), X.device, X.dtype)
    obj(acts())
    assert obj._flat_weights((3, 2, 2), X.device, X.dtype) is first
    close(obj({"x": torch.ones(1, 3, 5, 5)}), [1.0])  # another size: its own weights
    assert len(obj._flat) == 2


def test_mask_errors():
    with pytest.raises(ValueError, match="nothing is selected"):
        O.mask("x", torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="non-negative, got minimum -1"):
        O.mask("x", torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="finite"):
        O.mask("x", torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match="0-d"):
        O.mask("x", torch.tensor(1.0))
    with pytest.raises(TypeError, match="weights must be a tensor"):
        O.mask("x", object())
    with pytest.raises(
        ValueError, match=r"weights of shape \(3, 3, 3\) do not fit layer 'x' .* \(3, 2, 2\)"
    ):
        O.mask("x", torch.ones(3, 3, 3)).validate(SHAPES)
    with pytest.raises(ValueError, match="do not fit"):
        O.mask("x", torch.ones(3, 3, 3))(acts())


def test_element_errors():
    with pytest.raises(ValueError, match=r"element index \[0, 1\] needs 3 entries.*\(3, 2, 2\)"):
        O.element("x", [0, 1]).validate(SHAPES)
    with pytest.raises(IndexError, match=r"row index 2 out of range for layer 'x' with 2 rows"):
        O.element("x", [0, 2, 0]).validate(SHAPES)
    with pytest.raises(IndexError, match=r"unit index -4 out of range .*-3\.\.-1"):
        O.element("f", [-4]).validate(SHAPES)
    with pytest.raises(IndexError, match=r"position index 5 out of range for dimension 1 of"):
        O.element("m", [0, 5]).validate({"m": (2, 3)})
    with pytest.raises(TypeError, match=r"index\[1\] must be an int, got float"):
        O.element("x", [0, 1.0, 0])
    with pytest.raises(TypeError, match="sequence of ints"):
        O.element("x", 3)


def test_custom():
    obj = O.custom("x", lambda a: a.amax(dim=(1, 2, 3)), name="peak")
    close(obj(acts()), [11.0, 23.0])
    assert repr(obj) == "peak('x')"
    with pytest.raises(ValueError, match=r"one value per image.*\(2,\).*\(2, 3\)"):
        O.custom("x", lambda a: a.mean((2, 3)))(acts())
    with pytest.raises(TypeError, match="callable"):
        O.custom("x", 3)


def test_per_image_scores_each_image_by_its_own_objective():
    per = PerImage([O.channel("x", 0), O.channel("x", 2)])
    assert len(per) == 2
    assert per.layers == ("x",)
    x = X.clone().requires_grad_(True)
    value = per({"x": x})
    close(value.detach(), [1.5, 21.5])  # image 0, channel 0; image 1, channel 2
    for k in range(2):
        (grad,) = torch.autograd.grad(value[k], x, retain_graph=True)
        assert grad[1 - k].abs().sum() == 0  # image j != k gets nothing from objective k
        assert grad[k].abs().sum() > 0
    g0 = torch.autograd.grad(value[0], x, retain_graph=True)[0][0]
    assert torch.equal(g0[0], torch.full((2, 2), 0.25)) and g0[1:].abs().sum() == 0
    with pytest.raises(ValueError, match="batch of 2 images, got 3"):
        per({"x": torch.rand(3, 3, 2, 2)})
    with pytest.raises(ValueError, match="empty"):
        PerImage([])
    with pytest.raises(TypeError, match="objective 1 must be an Objective, got int"):
        PerImage([O.channel("x", 0), 3])


def test_as_objective():
    obj = O.channel("x", 1)
    assert O.as_objective(obj) is obj
    per = O.as_objective([O.channel("x", 0), O.channel("x", 2)])
    assert isinstance(per, PerImage) and len(per) == 2
    assert isinstance(O.as_objective((obj, obj)), PerImage)
    with pytest.raises(TypeError, match="got str"):
        O.as_objective("channel")


# ------------------------------------------------------------------------------ algebra
A = O.channel("x", 1)  # [5.5, 17.5]
B = O.channel("x", 0)  # [1.5, 13.5]
C = O.neuron("f", 2)  # [3, 6]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: A + B, [7.0, 31.0]),
        (lambda: A - B, [4.0, 4.0]),
        (lambda: 2 * A, [11.0, 35.0]),
        (lambda: A * 2, [11.0, 35.0]),
        (lambda: A / 2, [2.75, 8.75]),
        (lambda: -A, [-5.5, -17.5]),
        (lambda: A + 1, [6.5, 18.5]),
        (lambda: 1 + A, [6.5, 18.5]),
        (lambda: A - 1, [4.5, 16.5]),
        (lambda: 1 - A, [-4.5, -16.5]),
        (lambda: sum([A, B, C]), [10.0, 37.0]),
        (lambda: 0.5 * (A + B) - 3 * C + 2, [-3.5, -0.5]),
        (lambda: -(A - B) / 4, [-1.0, -1.0]),
        (lambda: A * 0, [0.0, 0.0]),
    ],
)
def test_algebra_values(make, expected):
    obj = make()
    assert isinstance(obj, Objective)
    close(obj(acts()), expected)


def test_nested_sums_flatten():
    total = (A + B) + (C - (A + 2 * B)) + 1
    assert isinstance(total, _Sum)
    assert all(not isinstance(term, _Sum) for _, term in total.terms)
    assert [w for w, _ in total.terms] == [1.0, 1.0, 1.0, -1.0, -2.0]
    assert total.constant == 1.0
    assert total.layers == ("x", "f")
    close(total(acts()), [3.0 - 1.5 + 1, 6.0 - 13.5 + 1])
    assert len(sum([A, B, C]).terms) == 3


def test_sum_validates_every_term():
    with pytest.raises(IndexError):
        (A + O.channel("x", 7)).validate({"x": (3, 2, 2), "f": (3,)})
    (A + C).validate({"x": (3, 2, 2), "f": (3,)})


def test_repr():
    assert (
        repr(O.channel("x", 1) - 0.5 * O.deepdream("y")) == "channel('x', 1) - 0.5 * deepdream('y')"
    )
    assert repr(O.neuron("a.b", 3)) == "neuron('a.b', 3)"
    assert repr(O.neuron("a", 3, y=1, x=2)) == "neuron('a', 3, y=1, x=2)"
    assert repr(O.spatial("a", 1, 2)) == "spatial('a', y=1, x=2)"
    assert repr(O.direction("a", [1.0, 2.0])) == "direction('a', <2 values>)"
    assert repr(O.diversity("a")) == "diversity('a')"
    assert repr(-2 * A + B + 1) == "-2 * channel('x', 1) + channel('x', 0) + 1"
    assert repr(A - 1.5) == "channel('x', 1) - 1.5"
    assert repr(O.class_logit(7)) == "neuron('', 7)"
    assert repr(PerImage([A, B])) == "PerImage([channel('x', 1), channel('x', 0)])"
    assert repr(O.element("a", (1, -1, 0))) == "element('a', [1, -1, 0])"
    assert repr(O.mean("a")) == "mean('a')"
    assert repr(O.mask("a", torch.ones(2, 1, 1))) == "mask('a', <weights of shape (2, 1, 1)>)"


def test_algebra_type_errors():
    with pytest.raises(TypeError, match="numbers only"):
        A * B
    with pytest.raises(TypeError):
        A + "1"
    with pytest.raises(TypeError):
        A - "1"
    with pytest.raises(TypeError):
        "1" - A
    with pytest.raises(TypeError):
        A * "2"
    with pytest.raises(TypeError):
        A / B
    with pytest.raises(TypeError):
        A + True  # a bool is no weight
    with pytest.raises(TypeError):
        A * True
    with pytest.raises(ValueError, match="by 0"):
        A / 0
    with pytest.raises(ValueError, match="by 0"):
        A / 0.0


# ------------------------------------------------------------------------------ validate
SHAPES = {"x": (3, 2, 2), "f": (3,)}


def test_validate_accepts_valid_indices():
    for obj in (
        O.neuron("x", 2),
        O.neuron("x", 0, y=1, x=1),
        O.neuron("f", 2),
        O.channel("x", 2),
        O.spatial("x", 1, 1),
        O.direction("x", [1.0, 2.0, 3.0]),
        O.deepdream("f"),
    ):
        obj.validate(SHAPES)


def test_validate_index_errors_name_range_and_value():
    with pytest.raises(IndexError, match=r"channel index 3 .*'x'.*3 channels.*0\.\.2"):
        O.channel("x", 3).validate(SHAPES)
    with pytest.raises(IndexError, match=r"channel index -4 .*0\.\.2, or -3\.\.-1"):
        O.channel("x", -4).validate(SHAPES)
    with pytest.raises(IndexError, match=r"unit index 5 .*'f' with 3 units.*0\.\.2"):
        O.neuron("f", 5).validate(SHAPES)
    with pytest.raises(IndexError, match=r"unit index 5 out of range for the model's output"):
        O.class_logit(5).validate({"": (3,)})
    with pytest.raises(IndexError, match=r"row index 2 .*0\.\.1"):
        O.neuron("x", 0, y=2, x=0).validate(SHAPES)
    with pytest.raises(IndexError, match=r"column index 4 .*0\.\.1"):
        O.spatial("x", 0, 4).validate(SHAPES)


def test_validate_value_errors():
    with pytest.raises(ValueError, match=r"\(C, H, W\).*'f'.*\(3,\)"):
        O.neuron("f", 0, y=0, x=0).validate(SHAPES)
    with pytest.raises(ValueError, match=r"\(C, H, W\).*'f'"):
        O.spatial("f", 0, 0).validate(SHAPES)
    with pytest.raises(ValueError, match=r"2 values.*'x' \(3\)"):
        O.direction("x", [1.0, 2.0]).validate(SHAPES)
    with pytest.raises(ValueError, match="both y and x"):
        O.neuron("x", 0, y=1)


def test_validate_type_errors_at_construction():
    with pytest.raises(TypeError, match=r"layer must be a str.*int"):
        O.channel(3, 1)
    with pytest.raises(TypeError, match="unit must be an int, got float"):
        O.channel("x", 1.0)
    with pytest.raises(TypeError, match="unit must be an int, got bool"):
        O.neuron("x", True)
    with pytest.raises(TypeError, match="y must be an int, got str"):
        O.spatial("x", "0", 0)
    with pytest.raises(TypeError, match="x must be an int, got float"):
        O.neuron("x", 0, y=1, x=0.5)


# ------------------------------------------------------------------------------ negative indices


def test_negative_indices_count_from_the_end():
    pairs = [
        (O.channel("x", -1), O.channel("x", 2)),
        (O.channel("f", -3), O.channel("f", 0)),
        (O.neuron("x", -1, y=-1, x=-2), O.neuron("x", 2, y=1, x=0)),
        (O.neuron("f", -1), O.neuron("f", 2)),
        (O.spatial("x", -2, -1), O.spatial("x", 0, 1)),
        (O.class_logit(-1), O.class_logit(2)),
    ]

    def value_and_grads(obj):
        x, f = X.clone().requires_grad_(True), FLAT.clone().requires_grad_(True)
        value = obj({"x": x, "f": f, "": f})
        value.sum().backward()
        return value.detach(), [g if g is not None else 0 for g in (x.grad, f.grad)]

    for negative, positive in pairs:
        negative.validate({**SHAPES, "": (3,)})
        value_n, grads_n = value_and_grads(negative)
        value_p, grads_p = value_and_grads(positive)
        assert torch.equal(value_n, value_p), (negative, positive)
        for gn, gp in zip(grads_n, grads_p, strict=True):
            assert torch.equal(torch.as_tensor(gn), torch.as_tensor(gp))


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        (O.channel("x", -4), r"channel index -4 out of range .*valid: 0\.\.2, or -3\.\.-1"),
        (O.channel("x", 3), r"channel index 3 out of range .*valid: 0\.\.2, or -3\.\.-1"),
        (O.neuron("x", 0, y=-3, x=0), r"row index -3 out of range .*valid: 0\.\.1, or -2\.\.-1"),
        (O.spatial("x", 0, -3), r"column index -3 out of range .*valid: 0\.\.1, or -2\.\.-1"),
        (O.neuron("f", -4), r"unit index -4 out of range .*valid: 0\.\.2, or -3\.\.-1"),
    ],
)
def test_negative_index_out_of_range_names_the_valid_range(obj, match):
    with pytest.raises(IndexError, match=match):
        obj.validate(SHAPES)
