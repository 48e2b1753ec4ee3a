"""Nothing wrong is ever saved as done: failed renders, damaged records, memory, clear messages.

The engine reports images that turned non-finite (``RenderResult.failed``); the CLI writes no
finished unit for them and exits with status 1; records are checked against a schema and their
PNG's SHA-256 on read; a folder holds one run configuration; memory is estimated up front.
Concurrent runs into one folder: ``test_reliability_concurrency.py``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import midnite
import midnite.gallery
import midnite.jobs.executors
import midnite.jobs.memory
from midnite import objectives as obj
from midnite import records as rec
from midnite.cli import main
from midnite.engine import RenderConfig, render_config, renderer

from conftest import tiny_cnn


class Poison(nn.Module):
    """Adds NaN to channel ``channel`` of its input (every channel with ``channel=None``).

    An addition passes gradients on unchanged, so only the objectives that read the poisoned
    channel see NaN; the ReLU after it sends no gradient back through NaN.
    """

    def __init__(self, channels: int, channel: int | None = None):
        super().__init__()
        offset = torch.zeros(channels)
        offset[slice(None) if channel is None else channel] = float("nan")
        self.register_buffer("offset", offset.view(1, -1, 1, 1))

    def forward(self, x):
        return x + self.offset


def poisoned(channel: int | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Poison(4, channel), nn.ReLU())


def quick(model, objective, **kw):
    kw = {"size": 16, "steps": 3, "progress": False, **kw}
    return midnite.render(model, objective, **kw)


# the engine reports non-finite renders ---------------------------------------------------------


def test_a_healthy_render_is_ok():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = quick(tiny_cnn(), obj.channel("2", 1))
    assert result.ok and result.failed == {}
    assert "failed" not in repr(result)


def test_a_nan_objective_is_reported_not_returned_silently():
    with pytest.warns(RuntimeWarning, match=r"1 of 1 image\(s\) failed"):
        result = quick(poisoned(), obj.channel("2", 0))
    assert not result.ok
    assert list(result.failed) == [0]
    assert re.search(r"objective is nan on the start image", result.failed[0])
    assert "failed: [0]" in repr(result)


def test_a_diverging_render_names_the_step_and_suggests_a_smaller_lr():
    with pytest.warns(RuntimeWarning):
        result = quick(tiny_cnn(), obj.channel("2", 1), lr=1e308, steps=4)
    assert list(result.failed) == [0]
    assert re.search(r"turned (nan|inf|-inf) at step [1-4] of 4 .*smaller lr", result.failed[0])


def test_only_the_failed_images_of_a_batch_are_reported():
    with pytest.warns(RuntimeWarning, match=r"1 of 3 image\(s\) failed"):
        result = quick(poisoned(channel=1), [obj.channel("2", u) for u in (0, 1, 2)])
    assert list(result.failed) == [1]
    assert torch.isfinite(result.images[[0, 2]]).all()
    assert torch.isfinite(result.final[[0, 2]]).all()


def test_an_infinite_image_is_reported_although_the_clamp_would_hide_it():
    # render_config checks the raw image, before clamp(0, 1) turns inf into 1
    start, final = torch.zeros(2), torch.zeros(2)
    history = torch.zeros(3, 2)
    image = torch.zeros(2, 3, 4, 4)
    image[1, 0, 0, 0] = float("inf")
    failed = renderer._failures(start, history, final, image)
    assert failed == {1: "the image holds non-finite values (1 of 48)"}
    history[2, 0] = float("-inf")
    final[0] = float("nan")
    assert renderer._failures(start, history, final, image)[0] == (
        "the objective turned -inf at step 3 of 3 (the optimization diverged: try a smaller lr)"
    )


# clear messages for settings -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_seeds_out_of_range_are_named(seed):
    message = rf"seed must be an int in \[0, 2\*\*63\), got {seed}"
    with pytest.raises(ValueError, match=message):
        RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), seed=seed)
    with pytest.raises(ValueError, match=message):
        midnite.engine.make_generator(seed, torch.device("cpu"))


def test_the_largest_seed_works():
    result = quick(tiny_cnn(), obj.channel("2", 1), seed=2**63 - 1)
    assert result.settings["seed"] == 2**63 - 1


def test_a_generator_seeded_above_2_63_still_works():
    gen = torch.Generator().manual_seed(2**64 - 1)
    result = quick(tiny_cnn(), obj.channel("2", 1), seed=gen)
    assert result.ok


def test_regularizers_none_means_none():
    a = quick(tiny_cnn(), obj.channel("2", 1), regularizers=None)
    b = quick(tiny_cnn(), obj.channel("2", 1))
    assert torch.equal(a.images, b.images)
    assert a.settings["regularizers"] == []


def test_absurd_steps_are_refused_with_the_bound():
    with pytest.raises(ValueError, match=r"steps must be at most 1000000, got 100000000000000"):
        RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), steps=100_000_000_000_000)


def test_wrong_channels_name_the_models_first_convolution():
    with pytest.raises(ValueError, match=r"channels=4.*first convolution '0' expects 3.*"
                                         r"channels=3") as info:  # fmt: skip
        quick(tiny_cnn(), obj.channel("2", 1), channels=4)
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, kept as the cause


# memory estimate -------------------------------------------------------------------------------


def estimate(model, **kw):
    return renderer.estimate_memory(model, RenderConfig.resolve(model, obj.channel("2", 1), **kw))


def test_memory_estimate_grows_with_batch_and_size():
    model = tiny_cnn()
    small, large = estimate(model, size=32), estimate(model, size=64)
    assert small.per_image > 0 and small.fixed >= 0
    assert 3 < large.per_image / small.per_image < 5  # 4x the pixels
    assert small.bytes(4) == small.fixed + 4 * small.per_image
    assert small.max_batch(small.bytes(3)) == 3
    assert small.max_batch(small.fixed) == 0


def test_memory_estimate_counts_history_and_leaves_the_model_as_it_was():
    model = tiny_cnn()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    few, many = estimate(model, steps=10), estimate(model, steps=10**6)
    assert many.per_image - few.per_image == (10**6 - 10) * 4
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_memory_estimate_is_near_the_measured_peak_of_a_real_render():
    # the activations a render keeps dominate its memory; the estimate must be of that order
    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(8 if i else 3, 8, 3, padding=1), nn.ReLU())
                            for i in range(6)])  # fmt: skip
    config = RenderConfig.resolve(model, obj.channel("5", 0), size=128, batch=2, steps=2)
    need = renderer.estimate_memory(model, config).bytes(2)
    activations = 6 * 2 * (8 * 128 * 128 * 4) * 2  # conv and relu outputs, batch 2
    assert activations <= need <= 6 * activations
    assert math.isfinite(need)
    render_config(model, config, progress=False)


# the command line ------------------------------------------------------------------------------

MODEL_SRC = """
import torch
from torch import nn


class Poison(nn.Module):
    def __init__(self, channel):
        super().__init__()
        offset = torch.zeros(1, 4, 1, 1)
        offset[:, channel] = float("nan")
        self.register_buffer("offset", offset)

    def forward(self, x):
        return x + self.offset


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1, stride=2)
    )


def other_weights():
    return net(seed=1)


def poisoned():  # channel 1 of layer '1' is NaN
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Poison(1), nn.ReLU())
"""

TINY = ["--size", "16", "--steps", "2", "--no-progress"]


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return path


def cli(*argv: object) -> int:
    return main([str(a) for a in argv])


def err_lines(capsys) -> list[str]:
    """stderr's lines; none may be part of a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()


def unit_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".png", ".json"))


def count_renders(monkeypatch) -> list[list[int]]:
    calls: list[list[int]] = []
    real = midnite.jobs.executors.render_config

    def counting(model, config, **kw):
        calls.append([o.unit for o in config.objective.objectives])
        return real(model, config, **kw)

    monkeypatch.setattr(midnite.jobs.executors, "render_config", counting)
    return calls


# 1. a non-finite render is never saved as done


def test_a_diverging_render_saves_nothing_exits_1_and_is_tried_again(
    model_path, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "X"
    args = ["render", f"{model_path}:net", "--layer", "0", "--units", "0-1", "--lr", "1e308",
            *TINY, "--out", out]  # fmt: skip
    assert cli(*args) == 1
    assert "rendered 0 units (0 up to date, 2 failed)" in capsys.readouterr().out
    assert cli(*args) == 1
    lines = err_lines(capsys)
    assert len(lines) == 3, lines
    for unit, line in zip((0, 1), lines, strict=False):
        assert line.startswith(f"midnite: unit {unit} (0_channel_000{unit}) failed, nothing saved")
        assert "smaller lr" in line
    assert lines[2].startswith("midnite: error: 2 of 2 units failed (non-finite)")
    assert "a rerun tries them again" in lines[2]
    assert unit_files(out) == []  # no finished unit, no half of one
    assert rec.scan(out).units == [] and rec.scan(out).damaged == []
    calls = count_renders(monkeypatch)
    assert cli(*args) == 1  # not "up to date": tried again
    assert calls == [[0, 1]]
    assert cli(*[a for a in args if a not in ("--lr", "1e308")]) == 0
    assert len(rec.scan(out).units) == 2


def test_only_the_failed_units_of_a_batch_are_left_out(model_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:poisoned", "--layer", "1", "--units", "0-2", *TINY,
            "--out", out]  # fmt: skip
    assert cli(*args) == 1
    lines = err_lines(capsys)
    assert lines[0].startswith("midnite: unit 1 (1_channel_0001) failed, nothing saved: the "
                               "objective is nan on the start image")  # fmt: skip
    assert "1 of 3 units failed (non-finite), nothing saved for them: 1;" in lines[-1]
    assert unit_files(out) == [
        f"1_channel_000{u}{e}" for u in (0, 2) for e in (".json", ".png", "_alpha.png")
    ]
    before = {n: (out / n).read_bytes() for n in unit_files(out)}
    for name in before:
        if name.endswith(".json"):
            assert rec.read_record(out / name)["metrics"]["total_variation"] >= 0
    calls = count_renders(monkeypatch)
    assert cli(*args) == 1
    assert calls == [[0, 1, 2]]  # the batch of the missing unit, as planned
    assert {n: (out / n).read_bytes() for n in unit_files(out)} == before


def test_a_non_finite_image_never_reaches_disk_even_unreported(
    model_path, tmp_path, monkeypatch, capsys
):
    # an engine (or a patched one) that hands back NaN images without naming them in .failed
    real = midnite.jobs.executors.render_config

    def nan_images(model, config, **kw):
        result = real(model, config, **kw)
        result.images[0] = float("nan")
        return result

    monkeypatch.setattr(midnite.jobs.executors, "render_config", nan_images)
    out = tmp_path / "out"
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "0-1", *TINY,
               "--out", out) == 1  # fmt: skip
    lines = err_lines(capsys)
    assert "unit 0 (0_channel_0000) failed, nothing saved: the image holds non-finite" in lines[0]
    assert unit_files(out) == [
        "0_channel_0001.json",
        "0_channel_0001.png",
        "0_channel_0001_alpha.png",
    ]


# 3. damaged records are reported, shown as damaged and rendered again


def damage(out: Path) -> dict[str, str]:
    """Damage units 0-4 of layer '2' in five ways; returns {stem: words the report says}."""

    def edit(unit, **fields):
        path = out / f"2_channel_000{unit}.json"
        record = json.loads(path.read_text())
        record.update(fields)
        path.write_text(json.dumps(record))

    text = (out / "2_channel_0000.json").read_text()
    (out / "2_channel_0000.json").write_text(text[: len(text) // 2])  # truncated JSON
    edit(1, activation=None)
    edit(2, metrics="abc")
    edit(3, layer=5)
    png = (out / "2_channel_0004.png").read_bytes()
    (out / "2_channel_0004.png").write_bytes(png[: len(png) // 2])  # truncated PNG
    return {
        "2_channel_0000": "its record is not valid JSON",
        "2_channel_0001": "'activation' must be an object, got null",
        "2_channel_0002": "'metrics' must be an object, got string 'abc'",
        "2_channel_0003": "'layer' must be a string, got number 5",
        "2_channel_0004": "its image '2_channel_0004.png' does not match the record's SHA-256",
    }


def test_damaged_units_are_reported_shown_and_rendered_again(
    model_path, tmp_path, monkeypatch, capsys
):
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-5", *TINY]
    reference = tmp_path / "reference"
    assert cli(*args, "--out", reference) == 0
    out = tmp_path / "out"
    assert cli(*args, "--out", out) == 0
    expected = damage(out)
    capsys.readouterr()

    assert cli("gallery", out) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 5
    for line, (stem, words) in zip(lines, expected.items(), strict=True):
        assert line.startswith(f"midnite: damaged unit {stem}: ") and words in line, line
    assert "1 units, 5 damaged" in captured.out
    html = (out / "index.html").read_text()
    assert html.count('class="tile damaged"') == 5 and html.count('class="tile"') == 1
    assert html.count("damaged: ") == 5
    assert "damaged: &#x27;activation&#x27; must be an object, got null" in html

    calls = count_renders(monkeypatch)
    assert cli(*args, "--out", out) == 0
    lines = err_lines(capsys)
    assert len(lines) == 5
    assert all(line.endswith("; rendering it again") for line in lines)
    assert calls == [[0, 1, 2, 3, 4, 5]]
    assert len(rec.scan(out).units) == 6 and rec.scan(out).damaged == []
    for name in unit_files(reference):
        if name.endswith(".png"):  # the same bytes as an undamaged run
            assert (out / name).read_bytes() == (reference / name).read_bytes()
    assert cli("gallery", out) == 0


def test_a_damaged_unit_outside_the_units_asked_for_is_reported_and_left(
    model_path, tmp_path, capsys
):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-5", *TINY, "--out", out]
    assert cli(*args) == 0
    damage(out)
    capsys.readouterr()
    assert cli(*args[:5], "5", *args[6:]) == 0
    lines = err_lines(capsys)
    assert len(lines) == 5 and all(ln.endswith("not in --units, left as it is") for ln in lines)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"format": "midnite.record/9"}, "'format' must be one of midnite.record/1, "
                                         "midnite.record/2, midnite.record/3, got string "
                                         "'midnite.record/9'"),
        ({"format": None}, "'format' must be one of"),
        ({"unit": -1}, "'unit' must be an integer >= 0, got number -1"),
        ({"image": {"file": "../../etc/passwd", "sha256": "0" * 64}},
         "'image.file' must be a file name in the record's folder"),
        ({"image": {"file": "x.png", "sha256": "abc"}}, "'image.sha256' must be 64 hex digits"),
        ({"activation": {"start": 0.0}}, "'activation.final' is missing"),
        ({"history": ["x"]}, "'history' must be an array of numbers or nulls"),
        ({"run": None}, "'run' must be an object, got null"),
    ],
)  # fmt: skip
def test_the_schema_names_what_is_wrong(change, words):
    record = {
        "format": rec.FORMAT, "model": "m", "layer": "", "unit": 0, "objective": "class",
        "key": {"batch": 1, "weights": "00"}, "run": {}, "metrics": {},
        "activation": {"start": 0.0, "final": 1.0}, "image": {"file": "a.png", "sha256": "0" * 64},
    }  # fmt: skip
    assert rec.check_record(dict(record)) == record
    with pytest.raises(rec.RecordError, match=re.escape(words)):
        rec.check_record({**record, **change})


def test_version_1_records_are_read_and_rendered_again(model_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-1", *TINY, "--out", out]
    assert cli(*args) == 0
    for path in out.glob("*.json"):  # as midnite.record/1 wrote them
        record = json.loads(path.read_text())
        record["format"] = "midnite.record/1"
        del record["run"], record["key"]["batch"], record["key"]["weights"]
        path.write_text(json.dumps(record))
    assert len(rec.scan(out).units) == 2
    assert cli("gallery", out) == 0
    calls = count_renders(monkeypatch)
    assert cli(*args) == 0  # the same configuration: no conflict; /1 keys lack fields: again
    assert calls == [[0, 1]]
    assert {r["format"] for _, r in rec.scan(out).units} == {rec.FORMAT}


# 4. a folder holds one run configuration


def test_more_units_of_the_same_configuration_render_only_the_new_ones(
    model_path, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--batch", "4", *TINY, "--out", out]
    assert cli(*args, "--units", "0-3") == 0
    calls = count_renders(monkeypatch)
    assert cli(*args, "--units", "0-5") == 0
    assert calls == [[4, 5]]
    assert cli(*args[:3], "0", *args[4:], "--units", "0-1") == 0  # another layer joins
    assert len(rec.scan(out).units) == 8


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--seed", "3"], "--seed 0; this run asks for --seed 3"),
        (["--steps", "3"], "--steps 2; this run asks for --steps 3"),
        (["--size", "24"], "--size 16x16; this run asks for --size 24x24"),
        (["--batch", "2"], "--batch 8; this run asks for --batch 2"),
        (["--lr", "0.5"], "--lr 0.05; this run asks for --lr 0.5"),
    ],
)
def test_another_configuration_is_refused_with_a_way_out(
    model_path, tmp_path, capsys, change, words
):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-1", *TINY, "--out", out]
    assert cli(*args) == 0
    before = {n: (out / n).read_bytes() for n in unit_files(out)}
    capsys.readouterr()
    assert cli(*args, *change) == 2
    (line,) = err_lines(capsys)
    assert words in line and line.endswith("use another --out, or --overwrite to replace them")
    assert {n: (out / n).read_bytes() for n in unit_files(out)} == before


def test_another_model_or_other_weights_are_refused(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--layer", "2", "--units", "0-1", *TINY, "--out", out]
    assert cli("render", f"{model_path}:net", *base) == 0
    capsys.readouterr()
    assert cli("render", f"{model_path}:other_weights", *base) == 2
    (line,) = err_lines(capsys)
    spec = re.escape(str(model_path))
    assert re.search(rf"holds 2 unit\(s\) of {spec}:net weights [0-9a-f]{{16}}; this run asks "
                     rf"for {spec}:other_weights weights [0-9a-f]{{16}}: use another --out",
                     line)  # fmt: skip
    assert cli("render", f"{model_path}:net", *base) == 0  # still the same: fine
    # the same MODEL, edited to make other weights
    model_path.write_text(MODEL_SRC.replace("def net(seed=0)", "def net(seed=5)"))
    assert cli("render", f"{model_path}:net", *base) == 2
    (line,) = err_lines(capsys)
    assert "weights " in line and "does it make random weights without a fixed seed?" in line


def test_overwrite_replaces_every_unit_of_the_other_configuration(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", *TINY, "--out", out]
    assert cli(*args, "--units", "0-3") == 0
    assert cli(*args, "--units", "0-1", "--seed", "9", "--overwrite") == 0
    units = rec.scan(out).units
    assert sorted(r["unit"] for _, r in units) == [0, 1]  # 2 and 3 were of the other run
    assert {r["seed"] for _, r in units} == {9}
    assert "removed 4 unit(s)" in capsys.readouterr().err


def test_overwrite_removes_nothing_when_the_run_cannot_start(
    model_path, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-3", *TINY, "--out", out]
    assert cli(*args) == 0
    before = {n: (out / n).read_bytes() for n in unit_files(out)}
    monkeypatch.setattr(midnite.jobs.memory, "available_memory", lambda dev: 0)
    assert cli(*args, "--seed", "9", "--overwrite") == 4
    (line,) = err_lines(capsys)
    assert "but 0 MiB is available; even --batch 1 needs" in line
    assert {n: (out / n).read_bytes() for n in unit_files(out)} == before


# 5. memory: ranges, steps, the estimate, running out


def test_a_huge_unit_range_is_refused_before_anything_is_built(model_path, tmp_path, capsys):
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "0-99999999999",
               *TINY, "--out", tmp_path / "out") == 2  # fmt: skip
    (line,) = err_lines(capsys)
    assert "units 0-99999999999 out of range for layer '0' with 4 channels" in line
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "3,5-99999999999",
               *TINY, "--out", tmp_path / "out") == 2  # fmt: skip
    assert "units 3-99999999999 out of range" in err_lines(capsys)[0]
    assert midnite.cli.parse_unit_ranges("0-99999999999,5") == [(0, 99999999999)]
    with pytest.raises(midnite.cli.UsageError, match="at most 1000000 at once"):
        midnite.cli.parse_units("0-99999999999")
    with pytest.raises(midnite.cli.UsageError, match="out of range for 4 units"):
        midnite.cli.parse_units("2-4", count=4)
    assert midnite.cli.parse_units("0-2,1-3,7") == [0, 1, 2, 3, 7]


def test_absurd_steps_on_the_command_line_are_refused_with_the_bound(model_path, tmp_path, capsys):
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "0", "--steps",
               "100000000000000", "--out", tmp_path / "out") == 2  # fmt: skip
    (line,) = err_lines(capsys)
    assert "--steps must be at most 1000000, got 100000000000000" in line


def test_a_render_that_will_not_fit_is_refused_with_a_batch_that_fits(
    model_path, tmp_path, monkeypatch, capsys
):
    model = midnite.models.load(f"{model_path}:net")
    config = RenderConfig.resolve(model, obj.channel("2", 0), size=16, steps=2)
    need = renderer.estimate_memory(model, config)
    monkeypatch.setattr(midnite.jobs.memory, "available_memory", lambda dev: need.bytes(3) + 1)
    calls = count_renders(monkeypatch)
    out = tmp_path / "out"
    args = ["render", f"{model_path}:net", "--layer", "2", "--units", "0-5", *TINY, "--out", out]
    assert cli(*args) == 4
    (line,) = err_lines(capsys)
    assert re.search(r"rendering 6 16x16 image\(s\) at once needs about .* per image\) on "
                     r"cpu, but .* is available; use --batch 3 \(or a smaller --size\)",
                     line)  # fmt: skip
    assert calls == [] and unit_files(out) == []
    monkeypatch.setattr(midnite.jobs.memory, "available_memory", lambda dev: need.bytes(1) // 2)
    assert cli(*args) == 4
    assert "even --batch 1 needs" in err_lines(capsys)[0]
    monkeypatch.setattr(midnite.jobs.memory, "available_memory", lambda dev: need.bytes(3) + 1)
    assert cli(*args, "--batch", "3") == 0  # the suggestion works


def test_available_memory_on_the_cpu_is_known_here():
    available = midnite.jobs.memory.available_memory(torch.device("cpu"))
    assert available is None or 0 <= available < 2**50


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                      "68719476736 bytes. Error code 12 (Cannot allocate memory)"), 4,
         "out of memory rendering units 0-1 (2 image(s) of 16x16 on cpu): DefaultCPUAllocator"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), 4,
         "CUDA out of memory"),
        (MemoryError(), 4, "MemoryError"),
        (RuntimeError("something inside torch went wrong"), 1,
         "rendering units 0-1 failed (RuntimeError: something inside torch went wrong); 0 of 2 "
         "units written, every file complete"),
    ],
)  # fmt: skip
def test_a_failure_inside_a_render_is_one_line_with_its_status(
    model_path, tmp_path, monkeypatch, capsys, error, status, words
):
    def fail(model, config, **kw):
        raise error

    monkeypatch.setattr(midnite.jobs.executors, "render_config", fail)
    out = tmp_path / "out"
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "0-1", *TINY,
               "--out", out) == status  # fmt: skip
    (line,) = err_lines(capsys)
    assert line.startswith("midnite: error: ") and words in line, line
    assert unit_files(out) == [] and not (out / rec.LOCK_NAME).exists()
    if status == 4:
        assert "Use a smaller --batch or --size" in line


def test_a_render_under_a_memory_limit_ends_in_one_line(model_path, tmp_path):
    # a real process with an address-space limit a little above what it uses when it starts
    script = textwrap.dedent(f"""
        import resource, sys
        from midnite.cli import main
        vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                  if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * 2**20, resource.RLIM_INFINITY))
        sys.exit(main(["render", {str(model_path) + ":net"!r}, "--layer", "2", "--units",
                       "0-5", "--size", "1024", "--batch", "6", "--steps", "2", "--no-progress",
                       "--out", {str(tmp_path / "out")!r}]))
    """)
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 4, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert re.search(r"needs about .* is available; use --batch [1-5] \(or a smaller --size\)"
                     r"|even --batch 1 needs", line), line  # fmt: skip


# 6. wrong place, wrong blame; the statuses are documented


def test_an_empty_out_is_refused(model_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("render", f"{model_path}:net", "--layer", "0", "--units", "0", *TINY,
               "--out", "") == 2  # fmt: skip
    assert err_lines(capsys) == ["midnite: error: --out must name a folder, got ''"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py"]


@pytest.mark.parametrize(
    ("device", "words"),
    [("meta", "'meta' holds no values, so nothing can be rendered on it"), ("gpu7", "'gpu7'")],
)
def test_the_device_error_is_the_engines_one_line(model_path, tmp_path, capsys, device, words):
    for command in (["render", f"{model_path}:net", "--layer", "0", "--units", "0", *TINY,
                     "--out", tmp_path / "out"], ["layers", f"{model_path}:net"]):  # fmt: skip
        assert cli(*command, "--device", device) == 2
        (line,) = err_lines(capsys)
        assert line.startswith("midnite: error: --device: ") and words in line
        assert "size" not in line


def test_exit_statuses_are_documented(capsys):
    assert main(["render", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("0 done", "1 some units failed", "2 mistake in the command line",
                  "3 another midnite run is writing to DIR", "4 not enough memory",
                  "130 interrupted", "--overwrite"):  # fmt: skip
        assert words in text
    doc = midnite.cli.__doc__
    for status in ("0 ", "1 ", "2 ", "3 ", "4 ", "130 "):
        assert f"\n    {status}" in doc


def test_an_unexpected_error_is_one_line_and_can_show_its_traceback(
    model_path, tmp_path, monkeypatch, capsys
):
    def broken(folder, **kw):
        raise KeyError("bug")

    monkeypatch.setattr(midnite.gallery, "build", broken)
    args = ["render", f"{model_path}:net", "--layer", "0", "--units", "0", *TINY,
            "--out", tmp_path / "out"]  # fmt: skip
    assert cli(*args) == 1
    (line,) = err_lines(capsys)
    assert line == "midnite: error: KeyError: 'bug' (unexpected; MIDNITE_TRACEBACK=1 shows where)"
    monkeypatch.setenv("MIDNITE_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli(*args)
