"""The attribution alpha map of every render (``RenderResult.alpha``), its files and its page."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite
from midnite import gallery
from midnite import objectives as obj
from midnite import records as rec
from midnite.cli import main
from midnite.engine.result import _failures
from midnite.images import alpha_png
from midnite.jobs import executors

from conftest import assert_same_state, model_state, tiny_cnn

ARTIFACTS = Path(os.environ.get("MIDNITE_ARTIFACTS", Path(__file__).parent / "artifacts"))
FAST = {"steps": 3, "progress": False, "transforms": None}


MODEL_SRC = """
import torch
from torch import nn


class LeftHalf(nn.Module):  # a conv that reads only the left half of the image
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x[..., : x.shape[-1] // 2])


def net():
    return LeftHalf()
"""


def _left_half_class() -> type:
    namespace: dict = {}
    exec(MODEL_SRC, namespace)  # the same model the CLI tests load from a file
    return namespace["LeftHalf"]


LeftHalf = _left_half_class()


def test_alpha_shape_sign_and_place():
    model = tiny_cnn()
    before = model_state(model)
    result = midnite.render(model, obj.channel("2", 1), size=(12, 20), batch=2, **FAST)
    alpha = result.alpha
    assert alpha.shape == (2, 12, 20) and alpha.dtype == torch.float32
    assert alpha.device.type == "cpu"
    assert bool(torch.isfinite(alpha).all()) and float(alpha.min()) >= 0
    assert float(alpha.flatten(1).max(1).values.min()) > 0  # every image got a gradient
    assert_same_state(before, model)


@pytest.mark.parametrize("param", ["fourier", "pixel"])
def test_alpha_is_zero_where_the_model_does_not_look(param):
    result = midnite.render(LeftHalf(), obj.channel("conv", 0), size=16, param=param, **FAST)
    left, right = result.alpha[..., :8], result.alpha[..., 8:]
    assert torch.equal(right, torch.zeros_like(right))
    assert bool((left > 0).all())


def test_alpha_known_answer():
    # objective = mean over H*W of sum_c w_c x_c: d(-objective)/dx_c = -w_c / (H*W) at every
    # pixel and step, so alpha = steps * mean_c |w_c| / (H*W), whatever the image
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))
    model = nn.Sequential(conv)
    steps, h, w = 4, 6, 10
    result = midnite.render(
        model, obj.channel("0", 0), size=(h, w), steps=steps, transforms=None, progress=False
    )
    expected = steps * (3.5 / 3) / (h * w)
    assert torch.allclose(result.alpha, torch.full((1, h, w), expected), rtol=1e-5)


def test_alpha_adds_up_over_steps():
    kw = {"size": 10, "transforms": None, "progress": False, "param": "pixel", "lr": 1e-6}
    one = midnite.render(tiny_cnn(), obj.channel("0", 2), steps=1, **kw).alpha
    five = midnite.render(tiny_cnn(), obj.channel("0", 2), steps=5, **kw).alpha
    # a tiny lr barely moves the image: five steps of nearly the same gradient
    assert torch.allclose(five, 5 * one, rtol=1e-3)


def test_alpha_covers_regularizers():
    tv = midnite.engine.regularizers.TotalVariation(1.0)
    plain = midnite.render(LeftHalf(), obj.channel("conv", 0), size=16, **FAST).alpha
    with_tv = midnite.render(
        LeftHalf(), obj.channel("conv", 0), size=16, regularizers=[tv], **FAST
    ).alpha
    assert float(plain[..., 9:].max()) == 0 and float(with_tv[..., 9:].max()) > 0


def test_failed_alpha_is_named():
    start = torch.zeros(2)
    history = torch.zeros(3, 2)
    image = torch.zeros(2, 3, 4, 4)
    alpha = torch.zeros(2, 4, 4)
    alpha[1, 0, 0] = float("nan")
    failed = _failures(start, history, start, image, alpha)
    assert list(failed) == [1] and "alpha map" in failed[1]
    assert _failures(start, history, start, image, torch.zeros(2, 4, 4)) == {}


def test_non_finite_gradient_fails_the_image():
    # a finite objective whose gradient is NaN (sqrt at 0): the image is no result
    zero = nn.Conv2d(3, 2, 1)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    sqrt = obj.custom("0", lambda act: act.abs().sqrt().flatten(1).mean(1))
    with pytest.warns(RuntimeWarning, match="failed"):
        result = midnite.render(nn.Sequential(zero), sqrt, size=8, **FAST)
    assert 0 in result.failed and not bool(torch.isfinite(result.alpha).all())


# the CLI's alpha files, records and gallery ---------------------------------------------------


def _render_folder(tmp_path: Path, units: str = "0-2", size: str = "32x32") -> Path:
    model = tmp_path / "left.py"
    model.write_text(MODEL_SRC)
    out = tmp_path / "out"
    argv = ["render", f"{model}:net", "--layer", "conv", "--units", units, "--batch", "2",
            "--steps", "3", "--size", size, "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_cli_saves_an_rgba_alpha_map_per_unit(tmp_path):
    out = _render_folder(tmp_path)
    for unit in range(3):
        record = json.loads((out / f"conv_channel_{unit:04d}.json").read_text())
        assert rec.check_record(record) is record
        entry = record["alpha"]
        assert entry["file"] == f"conv_channel_{unit:04d}_alpha.png"
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["scale"] > 0
        rgba = np.asarray(Image.open(out / entry["file"]))
        rgb = np.asarray(Image.open(out / record["image"]["file"]))
        assert rgba.shape == (32, 32, 4) and np.array_equal(rgba[..., :3], rgb)
        assert rgba[..., 3].max() == 255  # divided by its maximum
        # the model reads the left half; per-step jitter lets a little reach the right edge
        a = rgba[..., 3].astype(float)
        assert a[:, :12].mean() > 3 * a[:, 20:].mean()
    assert len(rec.read_records(out)) == 3


def test_alpha_png_known_answer():
    image = torch.zeros(1, 2, 2)
    image[0, 0, 0] = 1.0
    alpha = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    data, scale = alpha_png(image, alpha)
    rgba = np.asarray(Image.open(io.BytesIO(data)))
    assert scale == 4.0 and rgba.shape == (2, 2, 4)
    assert rgba[..., 3].tolist() == [[0, 64], [128, 255]]
    assert rgba[0, 0, :3].tolist() == [255, 255, 255] and rgba[1, 1, :3].tolist() == [0, 0, 0]
    nothing = alpha_png(torch.rand(3, 2, 2), torch.zeros(2, 2))
    assert nothing is not None and nothing[1] == 0.0
    assert (np.asarray(Image.open(io.BytesIO(nothing[0])))[..., 3] == 0).all()
    assert alpha_png(torch.rand(2, 2, 2), alpha) is None  # neither gray nor RGB


def test_damaged_or_missing_alpha_is_caught_and_rendered_again(tmp_path, capsys):
    out = _render_folder(tmp_path)
    changed = out / "conv_channel_0001_alpha.png"
    changed.write_bytes(changed.read_bytes()[:-20])  # truncated
    (out / "conv_channel_0002_alpha.png").unlink()
    found = rec.scan(out)
    reasons = {bad.stem: bad.reason for bad in found.damaged}
    assert "does not match the record's SHA-256" in reasons["conv_channel_0001"]
    assert "alpha map 'conv_channel_0001_alpha.png'" in reasons["conv_channel_0001"]
    assert reasons["conv_channel_0002"] == "its alpha map 'conv_channel_0002_alpha.png' is missing"
    assert [p.stem for p, _ in found.units] == ["conv_channel_0000"]
    key = json.loads((out / "conv_channel_0001.json").read_text())["key"]
    assert not rec.is_complete(out, "conv_channel_0001", key)
    page = (out / "index.html").read_text()
    assert main(["gallery", str(out)]) == 1  # damaged units are named
    assert "damaged" in (out / "index.html").read_text() and page
    capsys.readouterr()
    _render_folder(tmp_path)  # the same command renders them again
    assert len(rec.scan(out).units) == 3 and not rec.scan(out).damaged
    assert "damaged unit conv_channel_0001" in capsys.readouterr().err


def test_records_without_alpha_stay_valid(tmp_path):
    out = _render_folder(tmp_path, units="0")
    path = out / "conv_channel_0000.json"
    record = json.loads(path.read_text())
    (out / record.pop("alpha")["file"]).unlink()
    path.write_text(json.dumps(record))  # as an older midnite wrote it
    assert [p.stem for p, _ in rec.scan(out).units] == ["conv_channel_0000"]
    assert rec.is_complete(out, "conv_channel_0000", record["key"])
    gallery.build(out)
    page = (out / "index.html").read_text()
    assert 'id="show-alpha"' not in page and 'data-alpha=""' not in page


def test_alpha_record_schema():
    record = json.loads(json.dumps(_a_record()))
    rec.check_record(record)
    del record["alpha"]["sha256"]
    with pytest.raises(rec.RecordError, match=r"'alpha.sha256' is missing; it must be 64 hex"):
        rec.check_record(record)
    record = _a_record()
    record["alpha"]["file"] = "../x.png"
    with pytest.raises(rec.RecordError, match=r"'alpha.file' must be a file name"):
        rec.check_record(record)
    record = _a_record()
    record["alpha"]["scale"] = None
    with pytest.raises(rec.RecordError, match=r"'alpha.scale' must be a finite number, got null"):
        rec.check_record(record)


def _a_record() -> dict:
    return {
        "format": rec.FORMAT,
        "model": "m",
        "layer": "conv",
        "unit": 0,
        "objective": "channel",
        "key": {"batch": 1, "weights": "abc"},
        "run": {},
        "activation": {"start": 0.0, "final": 1.0},
        "metrics": {},
        "image": {"file": "a.png", "sha256": "0" * 64},
        "alpha": {"file": "a_alpha.png", "sha256": "1" * 64, "scale": 2.5},
    }


def test_gallery_page_offers_the_alpha_map(tmp_path):
    out = _render_folder(tmp_path)
    page = (out / "index.html").read_text()
    assert '<button type="button" id="show-alpha"' in page
    assert page.count('data-alpha=""') == 3
    for unit in range(3):
        assert f'src="conv_channel_{unit:04d}_alpha.png"' in page


@pytest.mark.slow
@pytest.mark.browser
def test_gallery_shows_the_alpha_map_in_a_browser(tmp_path, browser):
    out = _render_folder(tmp_path, units="0-3", size="64x64")
    browser.get((out / "index.html").as_uri())
    shown = (
        "return Array.from(document.querySelectorAll('#grid img'))"
        ".filter(i => getComputedStyle(i).display !== 'none').map(i => i.getAttribute('src'))"
    )
    assert all("_alpha" not in src for src in browser.execute_script(shown))
    button = browser.find_element("id", "show-alpha")
    button.click()
    srcs = browser.execute_script(shown)
    assert len(srcs) == 4 and all(src.endswith("_alpha.png") for src in srcs)
    assert button.get_attribute("aria-pressed") == "true"
    loaded = (
        "return Array.from(document.querySelectorAll('#grid img.alpha')).map(i => i.naturalWidth)"
    )
    assert browser.execute_script(loaded) == [64] * 4
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "gallery_alpha.png"))
    button.click()
    assert all("_alpha" not in src for src in browser.execute_script(shown))


def test_cli_saves_nothing_for_a_non_finite_alpha_map(tmp_path, monkeypatch, capsys):
    real = executors.render_config

    def nan_alpha(model, config, **kw):  # an engine that hands back NaN without naming it
        result = real(model, config, **kw)
        result.alpha[1] = float("nan")
        return result

    monkeypatch.setattr(executors, "render_config", nan_alpha)
    model = tmp_path / "left.py"
    model.write_text(MODEL_SRC)
    out = tmp_path / "out"
    argv = ["render", f"{model}:net", "--layer", "conv", "--units", "0-1", "--steps", "2",
            "--size", "16x16", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    assert "unit 1 (conv_channel_0001) failed, nothing saved: the alpha map holds non-finite" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in out.glob("conv_*")) == [
        "conv_channel_0000.json", "conv_channel_0000.png", "conv_channel_0000_alpha.png"
    ]  # fmt: skip
