"""Tests for midnite.engine.checks: canonical values back, and errors that name what was given."""

import numpy as np
import pytest
import torch

from midnite.engine import checks


def test_check_int():
    assert checks.check_int("n", 3) == 3
    assert checks.check_int("n", np.int64(4), 0) == 4
    assert type(checks.check_int("n", np.int64(4))) is int
    with pytest.raises(TypeError, match=r"n must be an int >= 1, got bool True"):
        checks.check_int("n", True, 1)
    with pytest.raises(TypeError, match=r"n must be an int, got float 2.5"):
        checks.check_int("n", 2.5)
    with pytest.raises(ValueError, match=r"n must be an int >= 1, got 0"):
        checks.check_positive_int("n", 0)


def test_check_real():
    assert checks.check_real("lr", 1) == 1.0
    assert checks.check_real("x", -3.5) == -3.5
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0"):
        checks.check_real("lr", 0, gt=0)
    with pytest.raises(ValueError, match=r"a finite number >= 0 and < 1, got 1.5"):
        checks.check_real("s", 1.5, ge=0, lt=1)
    with pytest.raises(ValueError, match=r"got nan"):
        checks.check_real("s", float("nan"))
    with pytest.raises(ValueError, match=r"<= 2, got 3"):
        checks.check_real("s", 3, le=2)
    with pytest.raises(TypeError, match=r"got str '1'"):
        checks.check_real("s", "1")
    with pytest.raises(TypeError, match=r"got bool"):
        checks.check_real("s", False)


def test_check_bool_choice_generator():
    assert checks.check_bool("clamp", False) is False
    with pytest.raises(TypeError, match=r"clamp must be True or False, got int 1"):
        checks.check_bool("clamp", 1)
    assert checks.check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        checks.check_choice("mode", "c", ("a", "b"))
    gen = torch.Generator()
    assert checks.check_generator(gen) is gen
    assert checks.check_generator(None) is None
    with pytest.raises(TypeError, match=r"torch.Generator or None, got int 0"):
        checks.check_generator(0)


def test_check_image_and_size():
    x = torch.zeros(1, 3, 4, 4)
    assert checks.check_image("img", x) is x
    assert checks.check_image("img", x[0], batch=False) is not None
    with pytest.raises(ValueError, match=r"img must have shape \(B, C, H, W\), got \(3, 4, 4\)"):
        checks.check_image("img", x[0])
    with pytest.raises(TypeError, match=r"floating-point.*torch.uint8"):
        checks.check_image("img", x.to(torch.uint8))
    with pytest.raises(TypeError, match=r"got list"):
        checks.check_image("img", [1])
    assert checks.check_size("size", 5) == (5, 5)
    assert checks.check_size("size", (3, np.int64(4))) == (3, 4)
    for bad in (0, (1,), (1, 0), "2", (True, 2), 2.0):
        with pytest.raises(ValueError, match=r"size must be a positive int or \(height, width\)"):
            checks.check_size("size", bad)


def test_resolve_index_negative_counts_from_the_end():
    assert checks.resolve_index(0, 4) == 0
    assert checks.resolve_index(-1, 4) == 3
    assert checks.resolve_index(-4, 4) == 0
    assert checks.resolve_index(np.int64(2), 4) == 2
    with pytest.raises(IndexError, match=r"channel index 4 out of range for a layer with 4 "):
        checks.resolve_index(4, 4, "channel")
    with pytest.raises(IndexError, match=r"valid: 0\.\.3, or -4\.\.-1"):
        checks.resolve_index(-5, 4, "channel")
    with pytest.raises(TypeError, match=r"channel index must be an int, got float 1.0"):
        checks.resolve_index(1.0, 4, "channel")
    with pytest.raises(TypeError, match=r"got bool"):
        checks.resolve_index(True, 4)


def test_check_weights():
    w = checks.check_weights("mask", [[True, False]])
    assert w.dtype == torch.float32 and w.tolist() == [[1.0, 0.0]]
    assert checks.check_weights("w", torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    source = torch.ones(3)
    assert checks.check_weights("w", source) is not source  # a copy: later edits do not leak
    cases = [
        ("abc", TypeError, r"mask must be a tensor \(bool or non-negative numbers\), got str"),
        (torch.tensor([1j]), TypeError, r"mask must be bool or real, got dtype torch.complex64"),
        (torch.tensor(1.0), ValueError, r"per-image shape, got a 0-d tensor"),
        (torch.tensor([1.0, float("inf")]), ValueError, r"mask must be finite"),
        (torch.tensor([1.0, -2.0]), ValueError, r"mask must be non-negative, got minimum -2"),
        (torch.zeros(2, 3), ValueError, r"nothing is selected: all 6 entries of mask \(shape"),
    ]
    for value, error, message in cases:
        with pytest.raises(error, match=message):
            checks.check_weights("mask", value)


def test_unit_float_scales_uint8_and_refuses_integers():
    from midnite.engine.checks import unit_float

    assert unit_float("x", torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [0.0, 1.0]
    half = unit_float("x", torch.tensor([0.5], dtype=torch.float64))
    assert half.dtype == torch.float32 and half.item() == 0.5
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor in \[0, 1\] or uint8"):
        unit_float("x", torch.tensor([1]))
