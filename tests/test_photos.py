"""midnite.photos: the licence-checked sample photographs from scikit-image."""

from __future__ import annotations

import sys

import pytest
import torch

from midnite import photos


def test_load_photos_shape_range_and_content():
    pytest.importorskip("skimage")
    x = photos.load_photos(32)
    assert x.shape == (len(photos.PHOTOS), 3, 32, 32)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # real photographs: not constant, and all different
    assert float(x.std()) > 0.1
    flat = x.flatten(1)
    assert torch.cdist(flat, flat).triu(1)[torch.ones(4, 4).triu(1).bool()].min() > 1


def test_paths_are_the_listed_files():
    pytest.importorskip("skimage")
    assert [p.name for p in photos.photo_paths()] == list(photos.PHOTOS)


@pytest.mark.parametrize("size", [0, 7, 3.5, True, "224"])
def test_bad_size(size):
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        photos.load_photos(size)


def test_without_scikit_image_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import fails
    with pytest.raises(photos.PhotosMissingError, match=r"pip install 'midnite\[photos\]'"):
        photos.photo_paths()


def test_write_crops_is_seeded_and_varied(tmp_path):
    pytest.importorskip("skimage")
    from PIL import Image

    a = photos.write_crops(tmp_path / "a", n=6, size=24, seed=1)
    b = photos.write_crops(tmp_path / "b", n=6, size=24, seed=1)
    c = photos.write_crops(tmp_path / "c", n=6, size=24, seed=2)
    names = sorted(p.name for p in a.iterdir())
    assert names == [f"crop_{i:04d}.png" for i in range(6)]
    assert [(a / n).read_bytes() for n in names] == [(b / n).read_bytes() for n in names]
    assert [(a / n).read_bytes() for n in names] != [(c / n).read_bytes() for n in names]
    with Image.open(a / names[0]) as im:
        assert im.size == (24, 24) and im.mode == "RGB"
    assert len({(a / n).read_bytes() for n in names}) == 6
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        photos.write_crops(tmp_path / "d", n=0)


def test_main_writes_the_stand_in_set(tmp_path, capsys):
    pytest.importorskip("skimage")
    assert photos.main([str(tmp_path / "set"), "3"]) == 0
    assert f"wrote 3 crops of {len(photos.PHOTOS)} photographs" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "set").iterdir())[-1] == "crop_0002.png"
    assert photos.main([]) == 2 and photos.main(["a", "b"]) == 2
    assert "usage: python -m midnite.photos DIR [N]" in capsys.readouterr().err


def test_python_m_midnite_photos_still_runs(tmp_path):
    pytest.importorskip("skimage")
    import os
    import subprocess
    from pathlib import Path

    src = str(Path(photos.__file__).resolve().parents[2])  # the src folder of this midnite
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "midnite.photos", str(tmp_path / "out"), "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 2 crops" in done.stdout and len(list((tmp_path / "out").iterdir())) == 2


def test_reference_crops_are_the_photos_centre_and_corners():
    pytest.importorskip("skimage")
    x = photos.reference_crops(32)
    n = len(photos.REFERENCE_PHOTOS)
    assert n >= 5 and x.shape == (n * photos.REFERENCE_CROPS, 3, 32, 32)
    assert [p.name for p in photos.reference_paths()] == list(photos.REFERENCE_PHOTOS)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # each photo's first crop is its centre square, as load_photos makes it (Pillow, bicubic)
    centres = x[:: photos.REFERENCE_CROPS][: len(photos.PHOTOS)]
    assert (centres - photos.load_photos(32)).abs().mean() < 0.02
    flat = x.flatten(1)  # 25 different images
    d = torch.cdist(flat, flat) + torch.eye(len(x)) * 1e9
    assert float(d.min()) > 0.5


def test_held_out_photos_are_not_in_the_reference():
    pytest.importorskip("skimage")
    names, x = photos.held_out_photos(24)
    assert set(names) <= set(photos.HELD_OUT) and len(names) >= 2
    assert not set(names) & set(photos.REFERENCE_PHOTOS)
    assert x.shape == (len(names), 3, 24, 24)


@pytest.mark.parametrize("side", [0, 7, 3.5, True])
def test_reference_bad_side(side):
    with pytest.raises(ValueError, match="side must be an int >= 8"):
        photos.reference_crops(side)
    with pytest.raises(ValueError, match="side must be an int >= 8"):
        photos.held_out_photos(side)
