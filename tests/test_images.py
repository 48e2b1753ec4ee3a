"""midnite.images: the one loader (load, fit, shrink, decode) and the listing helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import midnite.dataset_examples as dx
import midnite.images as images
from midnite.errors import MidniteError, UsageError
from midnite.images import UnreadableImageError, decode, fit, load, read_file, shown, shrink


def stripes() -> np.ndarray:
    """12 x 16 RGB: red left half, blue right half, a green top row."""
    arr = np.zeros((12, 16, 3), np.uint8)
    arr[:, :8, 0] = 255
    arr[:, 8:, 2] = 255
    arr[0, :, 1] = 255
    return arr


def test_a_file_loads_at_its_size_as_floats(tmp_path):
    Image.fromarray(stripes()).save(tmp_path / "s.png")
    x = load(tmp_path / "s.png")
    assert x.shape == (3, 12, 16) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(stripes()).permute(2, 0, 1).float() / 255)
    assert torch.equal(load(str(tmp_path / "s.png")), x)  # str or PathLike
    assert torch.equal(load((tmp_path / "s.png").read_bytes()), x)  # or the bytes
    assert load(tmp_path / "s.png", channels=None).shape == (3, 12, 16)
    grey = load(tmp_path / "s.png", channels=1)
    want = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    assert grey.shape == (1, 12, 16) and torch.allclose(grey, want, atol=1e-6)


def test_in_memory_images_of_every_layout_give_the_same_tensor():
    arr = stripes()
    want = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    for source in (
        arr,  # HWC uint8
        arr.transpose(2, 0, 1).copy(),  # CHW uint8
        arr.astype(np.float32) / 255,  # HWC float
        torch.from_numpy(arr).permute(2, 0, 1),  # CHW uint8 tensor
        want.clone(),  # CHW float tensor
        Image.fromarray(arr),  # PIL
        Image.fromarray(np.dstack([arr, np.full((12, 16), 7, np.uint8)])),  # RGBA: alpha dropped
    ):
        assert torch.allclose(load(source), want), type(source)
    grey = np.full((5, 6), 51, np.uint8)
    assert torch.allclose(load(grey), torch.full((3, 5, 6), 0.2))  # grey spread over RGB
    assert load(Image.fromarray(grey), channels=1).shape == (1, 5, 6)


def test_pil_modes_are_made_grey_rgb_or_rgba(tmp_path):
    pal = Image.fromarray(stripes()).convert("P")
    assert torch.allclose(load(pal), load(pal.convert("RGB")))
    la = Image.fromarray(np.full((4, 4, 2), 128, np.uint8), mode="LA")
    assert load(la).shape == (3, 4, 4)
    bilevel = Image.fromarray(np.eye(4, dtype=bool))
    assert torch.equal(load(bilevel, channels=1)[0], torch.eye(4))
    pal.save(tmp_path / "p.png")
    assert decode((tmp_path / "p.png").read_bytes()).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(stripes())  # 16 wide, 12 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 12 wide, 16 high
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    assert load(tmp_path / "r.jpg").shape == (3, 16, 12)
    assert decode(read_file(tmp_path / "r.jpg")).size == (12, 16)


def test_size_covers_and_centre_crops():
    x = torch.zeros(3, 20, 40)
    x[:, :, 10:30] = 1.0  # the middle half is white
    out = fit(x, 20)
    assert out.shape == (3, 20, 20) and torch.equal(out, torch.ones(3, 20, 20))
    small = fit(x, (10, 10))
    assert small.shape == (3, 10, 10) and bool((small > 0.99).all())
    tall = fit(x, (20, 10))  # 1:2 box from a 2:1 image: the middle 10 columns
    assert tall.shape == (3, 20, 10) and torch.equal(tall, torch.ones(3, 20, 10))
    big = fit(torch.rand(1, 8, 8), 32, resample="bicubic")
    assert big.shape == (1, 32, 32) and 0 <= float(big.min()) <= float(big.max()) <= 1
    assert torch.equal(load(x, size=20), out)
    with pytest.raises(UsageError, match="float image tensor"):
        fit(torch.zeros(1, 3, 4, 4), 2)


def test_shrink_area_averages_to_the_longest_side():
    x = torch.zeros(3, 8, 16)
    x[:, :, 1::2] = 1.0
    out, scale = shrink(x, 8)
    assert out.shape == (3, 4, 8) and scale == 0.5
    assert torch.allclose(out, torch.full((3, 4, 8), 0.5))
    same, one = shrink(x, 100)
    assert same is x and one == 1.0  # never enlarged
    with pytest.raises(ValueError, match="size must be an int >= 1, got 0"):
        shrink(x, 0)
    with pytest.raises(UsageError, match="image tensor \\(C, H, W\\)"):
        shrink(x[0], 4)


def test_bad_images_are_clear_errors(tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "cut.png").write_bytes(Image.fromarray(stripes())._repr_png_()[:60])
    with pytest.raises(UnreadableImageError, match=r"t.txt': not a JPEG or PNG"):
        load(tmp_path / "t.txt")
    with pytest.raises(UnreadableImageError, match="cannot decode"):
        load(tmp_path / "cut.png")
    with pytest.raises(UnreadableImageError, match=r"a dangling symlink|cannot be read"):
        load(tmp_path / "missing.png")
    with pytest.raises(UnreadableImageError) as caught:
        load(b"GIF89a")
    err = caught.value
    assert isinstance(err, UsageError) and isinstance(err, MidniteError) and err.exit_code == 2
    assert err.where == "the given bytes" and "not a JPEG" in err.reason
    with pytest.raises(TypeError, match="got int"):
        load(3)
    with pytest.raises(UsageError, match=r"float values must be in \[0, 1\]"):
        load(torch.full((3, 4, 4), 2.0))
    with pytest.raises(UsageError, match="one image, got a batch of 2"):
        load(torch.rand(2, 3, 4, 4))
    with pytest.raises(UsageError, match="resample must be one of"):
        load(torch.rand(3, 4, 4), size=2, resample="nearest")
    with pytest.raises(ValueError, match="size must be a positive int"):
        load(torch.rand(3, 4, 4), size=0)
    with pytest.raises(ValueError, match="has 3 channels; the model takes 2"):
        load(torch.rand(3, 4, 4), channels=2)


def test_shown_quotes_names_for_one_line():
    assert shown("a.png") == "'a.png'"
    assert shown("a\nb") == "'a\\nb'" and "\n" not in shown("x\n\r\x1b")


def test_the_old_names_are_the_new_objects():
    assert dx.UnreadableImageError is images.UnreadableImageError
    assert dx.UnreadableImageWarning is images.UnreadableImageWarning
    assert dx.list_images is images.list_images
    buf = io.BytesIO()
    Image.fromarray(stripes()).save(buf, format="PNG")
    assert torch.equal(dx.load_image(buf.getvalue(), (12, 16)), load(buf.getvalue()))
