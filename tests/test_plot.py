"""Plot helpers: figures (Agg backend), PNG round trips and atomic saves, layout helpers."""

from __future__ import annotations

import os
import stat

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from midnite import plot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def ramp(c: int = 3, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.linspace(0, 1, c * h * w).view(c, h, w)


def image_data(fig: Figure) -> np.ndarray:
    (ax,) = fig.axes
    (im,) = ax.get_images()
    return np.asarray(im.get_array())


# ------------------------------------------------------------------------------ to_hwc
def test_to_hwc_shapes_and_values():
    img = ramp()
    arr = plot.to_hwc(img)
    assert arr.shape == (4, 5, 3) and arr.dtype == np.float32
    assert arr[2, 3, 1] == img[1, 2, 3].item()
    np.testing.assert_array_equal(plot.to_hwc(img[None]), arr)
    gray = ramp(1)
    assert plot.to_hwc(gray).shape == (4, 5)
    np.testing.assert_array_equal(plot.to_hwc(gray), gray[0].numpy())
    assert plot.to_hwc(gray[None]).shape == (4, 5)
    np.testing.assert_array_equal(plot.to_hwc(gray[0]), gray[0].numpy())
    assert plot.to_hwc(ramp(4)).shape == (4, 5, 4)
    from_double = plot.to_hwc(img.double().requires_grad_(True))
    assert from_double.dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5,), (2, 4, 5), (3, 4, 5, 6, 7)])
def test_to_hwc_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match=r"got \(" + ", ".join(map(str, shape))):
        plot.to_hwc(torch.zeros(shape))


def test_to_hwc_rejects_non_tensors():
    with pytest.raises(TypeError, match="got ndarray"):
        plot.to_hwc(np.zeros((3, 4, 5)))


def test_to_uint8_rounds_and_clips():
    img = torch.tensor([[[-0.5, 0.0, 0.5, 1.0, 2.0, 0.2]]])
    assert plot.to_uint8(img).tolist() == [[0, 0, 128, 255, 255, 51]]


# ------------------------------------------------------------------------------ show
def test_show_returns_figure_with_the_image():
    img = ramp()
    fig = plot.show(img)
    assert isinstance(fig, Figure)
    np.testing.assert_array_equal(image_data(fig), plot.to_hwc(img))
    assert tuple(fig.get_size_inches()) == (4.0, 4.0)


def test_show_scale_doubles_the_figure():
    small = plot.show(ramp()).get_size_inches()
    big = plot.show(ramp(), scale=2).get_size_inches()
    np.testing.assert_allclose(big, 2 * small)


def test_show_grayscale_and_clipping():
    gray = torch.tensor([[[-1.0, 0.25], [0.5, 3.0]]])
    fig = plot.show(gray)
    np.testing.assert_array_equal(image_data(fig), [[0.0, 0.25], [0.5, 1.0]])
    assert fig.axes[0].get_images()[0].get_cmap().name == "gray"


@pytest.mark.parametrize("scale", [0, -1.0, "2", None])
def test_show_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match=f"scale must be a number > 0, got {scale!r}"):
        plot.show(ramp(), scale=scale)


def test_show_normalized_min_max():
    img = torch.tensor([[[2.0, 4.0], [6.0, 10.0]]])
    fig = plot.show_normalized(img, scale=2)
    np.testing.assert_allclose(image_data(fig), [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(fig.get_size_inches(), (8.0, 8.0))
    const = plot.show_normalized(torch.full((3, 2, 2), 7.0))
    np.testing.assert_array_equal(image_data(const), np.full((2, 2, 3), 0.5))


def test_normalized():
    out = plot.normalized(torch.tensor([-1.0, 0.0, 3.0]))
    torch.testing.assert_close(out, torch.tensor([0.0, 0.25, 1.0]))
    assert plot.normalized(torch.full((2, 2), -3.0)).tolist() == [[0.5, 0.5], [0.5, 0.5]]


# ------------------------------------------------------------------------------ save_png
def test_save_png_round_trip(tmp_path):
    img = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(0))
    out = plot.save_png(img, tmp_path / "a.png")
    assert out == tmp_path / "a.png"
    with Image.open(out) as pil:
        assert pil.mode == "RGB" and pil.size == (7, 6)
        back = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255).permute(2, 0, 1)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    assert os.listdir(tmp_path) == ["a.png"]  # no temporary file left


def test_save_png_gray_and_str_path(tmp_path):
    gray = torch.tensor([[[0.0, 1.0], [0.5, 0.2]]])
    out = plot.save_png(gray, str(tmp_path / "g.PNG"))
    with Image.open(out) as pil:
        assert pil.mode == "L"
        assert np.asarray(pil).tolist() == [[0, 255], [128, 51]]


def test_save_png_file_mode_follows_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        out = plot.save_png(ramp(), tmp_path / "m.png")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # readable by a gallery's web server


def test_save_png_refuses_other_suffixes(tmp_path):
    for name in ("a.jpg", "a", "a.png.bak"):
        with pytest.raises(ValueError, match=r"\.png files, got .*" + name.replace(".", r"\.")):
            plot.save_png(ramp(), tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_save_png_failure_keeps_existing_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old contents")

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        plot.save_png(ramp(), target)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["keep.png"]


def test_save_png_overwrites_on_success(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    plot.save_png(torch.zeros(3, 2, 2), target)
    with Image.open(target) as pil:
        assert np.asarray(pil).max() == 0


# ------------------------------------------------------------------------------ contact_sheet
def test_contact_sheet_offsets():
    imgs = [torch.full((3, 2, 3), v) for v in (0.0, 0.2, 0.4, 0.6, 0.8)]
    sheet = plot.contact_sheet(imgs, columns=2, pad=1)
    # 3 rows of (2 + 1) plus 1; 2 columns of (3 + 1) plus 1
    assert sheet.shape == (3, 10, 9)
    for k, v in enumerate((0.0, 0.2, 0.4, 0.6, 0.8)):
        r, c = divmod(k, 2)
        y, x = 1 + 3 * r, 1 + 4 * c
        torch.testing.assert_close(sheet[:, y : y + 2, x : x + 3], torch.full((3, 2, 3), v))
    # padding and the empty sixth cell are white
    assert (sheet[:, 0] == 1).all() and (sheet[:, :, 0] == 1).all() and (sheet[:, :, 4] == 1).all()
    assert (sheet[:, 7:9, 5:8] == 1).all()
    mask = torch.ones(10, 9, dtype=torch.bool)
    for k in range(5):
        r, c = divmod(k, 2)
        mask[1 + 3 * r : 3 + 3 * r, 1 + 4 * c : 4 + 4 * c] = False
    assert (sheet[:, mask] == 1).all()


def test_contact_sheet_resizes_and_expands_gray():
    big = torch.zeros(3, 4, 4)
    small = torch.full((1, 2, 2), 0.5)
    sheet = plot.contact_sheet([big, small], columns=2, pad=0)
    assert sheet.shape == (3, 4, 8)
    torch.testing.assert_close(sheet[:, :, 4:], torch.full((3, 4, 4), 0.5))
    assert (sheet[:, :, :4] == 0).all()


def test_contact_sheet_takes_a_batch_tensor():
    batch = torch.stack([torch.full((3, 2, 3), v) for v in (0.1, 0.5, 0.9)])  # (B, C, H, W)
    sheet = plot.contact_sheet(batch, columns=2, pad=1)
    assert torch.equal(sheet, plot.contact_sheet(list(batch), columns=2, pad=1))
    assert sheet.shape == (3, 7, 9)
    torch.testing.assert_close(sheet[:, 4:6, 1:4], torch.full((3, 2, 3), 0.9))
    with pytest.raises(
        ValueError, match=r"batch \(B, C, H, W\), got a tensor of shape \(3, 2, 3\)"
    ):
        plot.contact_sheet(batch[0])
    with pytest.raises(ValueError, match="at least one image"):
        plot.contact_sheet(batch[:0])
    with pytest.raises(TypeError, match="got int"):
        plot.contact_sheet(3)
    with pytest.raises(ValueError, match="pad must be an int >= 0, got -1"):
        plot.contact_sheet(batch, pad=-1)


def test_contact_sheet_errors():
    with pytest.raises(ValueError, match="at least one image"):
        plot.contact_sheet([])
    with pytest.raises(ValueError, match="columns must be an int >= 1, got 0"):
        plot.contact_sheet([ramp()], columns=0)
