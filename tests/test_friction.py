"""What a new user trips on (#23 items 2-8, #24's CLI items): the catalogue's recipes and alpha
maps, stopping by signal, pages kept up to date, captions in words, the plan said before a long
run, the progress bar, a broken pipe, and folders of the other command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from midnite.cli import catalogue as cli_catalogue
from midnite.cli import folders, main
from midnite.engine import StepState
from midnite.jobs import Settings, estimate, executors, plan, signals, views
from midnite.jobs.estimate import _probed
from midnite.jobs.progress import Progress
from midnite.pages import catalogue as site
from midnite.pages import gallery
from midnite.store import records as rec

from conftest import CLI_MODEL_SRC

FAST = ["--steps", "2", "--size", "16", "--no-progress"]
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(CLI_MODEL_SRC)
    return f"{path}:net"


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def catalogue(model_file: str, out: Path, *more: object) -> int:
    return run("catalogue", model_file, "--out", out, "--layers", "2", *FAST, *more)


# item 2: --recipe, --param, alpha maps ---------------------------------------------------------


def test_catalogue_takes_recipe_and_param_and_writes_alpha_maps(model_file, tmp_path):
    out = tmp_path / "cat"
    assert catalogue(model_file, out, "--units", "0-1", "--recipe", "natural", "--param",
                     "pixel") == 0  # fmt: skip
    record = json.loads((out / "2" / "channel_0001.json").read_text())
    assert record["key"]["recipe"] == "natural" and record["key"]["param"] == "pixel"
    alpha = out / "2" / "channel_0001_alpha.png"
    assert record["alpha"]["file"] == alpha.name and alpha.is_file()
    page = (out / "2" / "0001.html").read_text()
    assert 'href="channel_0001_alpha.png"' in page and ">alpha map</a>" in page
    # another recipe is other work: rendered again, not taken as done
    assert catalogue(model_file, out, "--units", "0-1") == 0
    assert json.loads((out / "2" / "channel_0001.json").read_text())["key"]["recipe"] != "natural"


def test_catalogue_refuses_an_unknown_recipe(model_file, tmp_path, capsys):
    assert catalogue(model_file, tmp_path / "cat", "--recipe", "nope") == 2
    assert "argument --recipe: invalid choice: 'nope'" in capsys.readouterr().err


# item 3: stopping by signal, pages as batches finish, gallery of a catalogue -----------------


def _signal_in_batch(monkeypatch, number: int, signum: int) -> list:
    """Send ``signum`` to this process while batch ``number`` renders."""
    real = executors.render_config
    calls: list = []

    def render(model, config, **kw):
        calls.append(config)
        if len(calls) == number:
            os.kill(os.getpid(), signum)
        return real(model, config, **kw)

    monkeypatch.setattr(executors, "render_config", render)
    return calls


@POSIX
@pytest.mark.parametrize(("signum", "status", "words"), [
    (signal.SIGTERM, 143, "stopped by SIGTERM"),
    (signal.SIGHUP, 129, "stopped by SIGHUP"),
])  # fmt: skip
def test_sigterm_and_sighup_stop_a_catalogue_like_ctrl_c(
    model_file, tmp_path, monkeypatch, capsys, signum, status, words
):
    out = tmp_path / "cat"
    before = {s: signal.getsignal(s) for s in signals.STOPS}
    _signal_in_batch(monkeypatch, 2, signum)
    assert catalogue(model_file, out, "--views", "channel,negative", "--batch", "3") == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1  # a short run starts without a word, and stops with one line
    assert err[0].startswith(f"midnite: {words}; 3 of 12 units written") and "resume" in err[0]
    # the batch that was rendering is discarded, the pages show what is done of the plan
    assert sorted(p.name for p in (out / "2").glob("*.json")) == [
        f"channel_000{u}.json" for u in range(3)
    ]
    index = (out / "index.html").read_text()
    assert "3 of 12 planned" in index
    assert (out / "2" / "0002.html").is_file() and not (out / "2" / "0003.html").exists()
    assert {s: signal.getsignal(s) for s in signals.STOPS} == before  # handlers restored
    monkeypatch.undo()
    assert catalogue(model_file, out, "--views", "channel,negative", "--batch", "3") == 0
    assert "12 of 12 planned" in (out / "index.html").read_text()


@POSIX
def test_sigterm_stops_a_render_with_143(model_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _signal_in_batch(monkeypatch, 2, signal.SIGTERM)
    argv = ["render", model_file, "--layer", "2", "--units", "0-3", "--batch", "2", "--out", out]
    assert run(*argv, *FAST) == 143
    assert "stopped by SIGTERM; 2 of 4 units written" in capsys.readouterr().err
    assert (out / "index.html").read_text().count('class="tile"') == 2


@POSIX
def test_an_ignored_sighup_stays_ignored(model_file, tmp_path, monkeypatch):
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals.stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        with signals.deferred_interrupt():
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing raised after the block
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_exit_status_of_a_stop():
    assert signals.exit_status(KeyboardInterrupt()) == 130
    assert signals.exit_status(KeyboardInterrupt(int(signal.SIGTERM))) == 143
    assert signals.signal_name(KeyboardInterrupt(int(signal.SIGTERM))) == "SIGTERM"
    assert signals.signal_name(KeyboardInterrupt()) == "Ctrl-C"


def test_pages_are_up_to_date_after_each_batch(model_file, tmp_path, monkeypatch):
    out = tmp_path / "cat"
    real = executors.render_config
    seen = []

    def render(model, config, **kw):  # what the folder shows while each batch renders
        index = out / "index.html"
        plan_text = (out / "catalogue.json").read_text() if index.exists() else ""
        seen.append(
            (
                index.exists(),
                sorted(p.name for p in (out / "2").glob("0*.html")),
                json.loads(plan_text)["layers"]["2"]["done"] if plan_text else None,
            )
        )
        return real(model, config, **kw)  # fmt: skip

    monkeypatch.setattr(executors, "render_config", render)
    assert catalogue(model_file, out, "--batch", "2") == 0
    assert seen == [
        (True, [], 0),  # the plan and the pages before the first batch
        (True, ["0000.html", "0001.html"], 2),
        (True, ["0000.html", "0001.html", "0002.html", "0003.html"], 4),
    ]


def test_site_update_rewrites_one_layer_and_the_index(model_file, tmp_path):
    out = tmp_path / "cat"
    assert run("catalogue", model_file, "--out", out, "--layers", "0", "2", *FAST) == 0
    pages = site.Site(out)
    other = (out / "0" / "0000.html").stat().st_mtime_ns
    (out / "2" / "channel_0001.png").write_bytes(b"not a png")  # now damaged
    index = pages.update("2", rec.scan(out / "2"))
    assert index == out / "index.html" and "damaged" in (out / "2" / "0001.html").read_text()
    assert "(1 damaged)" in index.read_text()
    assert (out / "0" / "0000.html").stat().st_mtime_ns == other  # the other layer untouched


def test_gallery_builds_a_catalogue_site(model_file, tmp_path, capsys):
    out = tmp_path / "cat"
    assert catalogue(model_file, out, "--units", "0-2") == 0
    for page in out.rglob("*.html"):
        page.unlink()
    capsys.readouterr()
    assert run("gallery", out) == 0
    assert capsys.readouterr().out.startswith("catalogue: 1 layer(s), 3 units: ")
    assert (out / "index.html").is_file() and (out / "2" / "0002.html").is_file()
    assert (
        "maximizes channel 2: its mean activation reached" in (out / "2" / "0002.html").read_text()
    )


def test_gallery_of_an_empty_folder_names_the_commands(tmp_path, capsys):
    assert run("gallery", tmp_path) == 2
    err = capsys.readouterr().err
    assert "'midnite render ... --out DIR' or 'midnite catalogue ... --out DIR'" in err


def test_a_partial_folder_shows_done_of_planned(tmp_path):
    entry = {"layer": "a", "units": 40, "views": ["channel"], "planned": 40, "done": 16}
    site.write_plan(tmp_path, "m", [entry])
    html = site.build_site(tmp_path).read_text()
    assert "<td>16 of 40 planned</td>" in html and ">40</td>" in html


# #24: folders of the other command, index.html not a file, --size "" ------------------------


def test_render_and_catalogue_refuse_each_others_folder(model_file, tmp_path, capsys):
    cat, flat = tmp_path / "cat", tmp_path / "flat"
    assert catalogue(model_file, cat, "--units", "0") == 0
    assert run("render", model_file, "--layer", "2", "--units", "0", "--out", flat, *FAST) == 0
    pages = {p: p.read_bytes() for p in (cat / "index.html", flat / "index.html")}
    capsys.readouterr()
    assert run("render", model_file, "--layer", "2", "--units", "0", "--out", cat, *FAST) == 2
    assert "holds the results of 'midnite catalogue'" in capsys.readouterr().err
    assert catalogue(model_file, flat, "--units", "0") == 2
    assert "holds the results of 'midnite render'" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in pages} == pages  # neither page replaced


def test_folder_kinds(tmp_path):
    assert folders.kind(tmp_path) == folders.EMPTY
    (tmp_path / "x.json").write_text("{}")  # someone else's JSON
    assert folders.kind(tmp_path) == folders.EMPTY
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "channel_0000.json").write_text("{}")
    (layer / "channel_0000.png").write_bytes(b"")
    assert folders.kind(tmp_path) == folders.CATALOGUE
    (tmp_path / "a_channel_0000.json").write_text("{}")
    (tmp_path / "a_channel_0000.png").write_bytes(b"")
    assert folders.kind(tmp_path) == folders.RENDER


@pytest.mark.parametrize("command", ["render", "catalogue"])
def test_an_index_html_folder_is_one_line(model_file, tmp_path, capsys, command):
    out = tmp_path / "out"
    (out / "index.html").mkdir(parents=True)
    if command == "render":
        argv = ["render", model_file, "--layer", "2", "--units", "0", "--out", out, *FAST]
    else:
        argv = ["catalogue", model_file, "--out", out, "--layers", "2", *FAST]
    assert run(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "index.html' is not a file (a folder or a link)" in err
    assert run("gallery", out) == 2


@pytest.mark.parametrize("command", ["layers", "render", "catalogue"])
def test_empty_size_is_refused(model_file, tmp_path, capsys, command):
    argv = {
        "layers": ["layers", model_file],
        "render": ["render", model_file, "--layer", "2", "--units", "0", "--out", tmp_path],
        "catalogue": ["catalogue", model_file, "--out", tmp_path],
    }[command]
    assert run(*argv, "--size", "") == 2
    assert "malformed size ''; accepted: N or HxW" in capsys.readouterr().err


# item 4: a long run says what it is about to do ------------------------------------------------


def test_a_long_run_says_what_it_is_about_to_do(model_file, tmp_path, monkeypatch, capsys):
    assert catalogue(model_file, tmp_path / "short", "--units", "0") == 0
    assert "about to render" not in capsys.readouterr().err  # a short run: not a word
    monkeypatch.setattr(cli_catalogue, "LONG_RUN", 4)
    assert catalogue(model_file, tmp_path / "cat") == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "about to render" in x)
    assert line.startswith("midnite: about to render 6 unit(s) of 1 layer(s) (views channel)")
    assert "expected about" in line and "on this machine" in line
    assert "--layers PATTERN" in line and "--units RANGE" in line and "--dry-run" in line
    assert catalogue(model_file, tmp_path / "cat") == 0  # nothing to do: nothing said
    assert "about to render" not in capsys.readouterr().err


def test_quick_probe_picks_layers_spread_over_the_plan():
    names = [f"l{i}" for i in range(10)]
    assert _probed(names, 3) == ["l0", "l4", "l9"] or _probed(names, 3) == ["l0", "l5", "l9"]
    assert _probed(names, 1) == ["l9"] and _probed(names, None) == names
    assert _probed(names[:2], 3) == names[:2]


def test_quick_estimate_costs_every_batch(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3),
                                torch.nn.Conv2d(4, 4, 3))  # fmt: skip
    shapes = {"0": (4, 14, 14), "1": (4, 12, 12), "2": (4, 10, 10)}
    work = plan(model, "m", ["0", "1", "2"], shapes, settings=Settings(size=(16, 16), steps=3))
    guess = estimate(model, work, 2, layers=2)
    assert set(guess.per_batch) == set(work) and all(c > 0 for c in guess.per_batch.values())
    # not probed: on the line between its probed neighbours' costs
    middle = (guess.per_batch[work[0]] + guess.per_batch[work[2]]) / 2
    assert guess.per_batch[work[1]] == pytest.approx(middle)


# item 5: progress -------------------------------------------------------------------------------


def _work(layers=("a", "b")):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    model.a = model[0]  # type: ignore[assignment]
    model.b = model[0]  # type: ignore[assignment]
    shapes = {name: (4, 8, 8) for name in layers}
    return plan(model, "m", list(layers), shapes, settings=Settings(size=(8, 8), steps=10, batch=2))


def test_progress_time_left_comes_from_each_layers_own_cost():
    work = _work()  # a: 2 batches, b: 2 batches
    a1, a2, b1, b2 = work
    bar = Progress(work, 8, enabled=False, expected={b: 1.0 for b in work})
    assert bar.left() == pytest.approx(4.0)  # the probe's, before anything is measured
    bar.done(a1, 10.0, 2)  # layer a measured 10x slower than the probe said
    assert bar.cost(a2) == pytest.approx(10.0)  # its own measured cost
    assert bar.cost(b1) == pytest.approx(10.0)  # the probe's, scaled by how far off it was
    bar.done(a2, 10.0, 2)
    bar.done(b1, 1.0, 2)  # layer b is cheap: its pending batch costs what b's measured
    assert bar.cost(b2) == pytest.approx(1.0)
    bar.close()


def test_progress_without_a_probe_learns_from_the_same_layer():
    work = _work()
    a1, a2 = work[:2]
    bar = Progress(work, 8, enabled=False)
    assert bar.left() is None  # nothing to go by yet
    bar.done(a1, 4.0, 2)
    assert bar.cost(a2) == pytest.approx(4.0) and bar.left() is not None
    bar.close()


def test_progress_names_the_layer_and_view_and_shows_steps():
    a1, _, b1, _ = _work()
    bar = Progress([a1, b1], 4, enabled=True)
    assert bar.bar.desc == "midnite a channel"
    bar.step(StepState(step=3, values=torch.zeros(2)))
    assert "step 3/10" in bar.bar.postfix
    bar.done(a1, 1.0, 2)
    assert bar.bar.desc == "midnite b channel"
    executor = executors.InProcess(torch.nn.Identity())
    bar.attach(executor)
    assert executor.callback == bar.step
    bar.close()
    assert executor.callback is None  # detached when the bar closes


def test_one_final_line(model_file, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "midnite", "render", model_file, "--layer", "2", "--units", "0-3",
           "--batch", "2", "--steps", "2", "--size", "16", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("rendered 4 units") == 1
    assert proc.stderr.count("4/4 units") <= 1  # the finished bar, if drawn, once


# item 6: captions ---------------------------------------------------------------------------


def test_captions_say_in_words_what_each_view_optimizes():
    words = views.captions()
    assert words["channel"](5, 3.25) == "maximizes channel 5: its mean activation reached 3.25"
    assert words["negative"](5, 20.94) == (
        "minimizes channel 5: its mean activation reached -20.94"
    )
    assert "not comparable" in words["diversity"](5, 1.0)
    assert "diversity term" in words["diversity"](5, 1.0)
    assert words["class"](7, None) == "maximizes the logit of class 7"
    assert words["neuron"](2, float("nan")) == "maximizes the centre neuron of channel 2"
    assert site.caption("other", 1, 2.0) == "other view of unit 1: objective 2"


def test_pages_carry_the_captions_and_label_their_numbers(model_file, tmp_path):
    out = tmp_path / "cat"
    assert catalogue(model_file, out, "--units", "0", "--views", "channel,negative,diversity") == 0
    page = (out / "2" / "0000.html").read_text()
    negative = json.loads((out / "2" / "negative_0000.json").read_text())
    reached = f"{-negative['activation']['final']:.4g}"
    assert f"minimizes channel 0: its mean activation reached {reached}" in page
    assert "maximizes channel 0 in 4 images that differ" in page and "not comparable" in page
    assert "objective at the end" in page and "<dt>spectrum_slope</dt>" in page
    assert page.count('<table class="settings">') == 1
    flat = tmp_path / "flat"
    argv = ["render", model_file, "--layer", "2", "--units", "0", "--out", flat, *FAST]
    assert run(*argv) == 0
    assert "maximizes channel 0: its mean activation reached" in (flat / "index.html").read_text()
    assert gallery.page([], "t").count('class="caption"') == 0


def test_dataset_example_numbers_are_labelled(tmp_path):
    layer = tmp_path / "l"
    layer.mkdir()
    unit = site.Unit(0)
    found = site.Layer("l", "l", {0: unit}, {0: [{"file": "x.png", "value": 4.2, "box": None}]})
    html = site._unit_html(found, unit, "m", layer)
    assert "peak activation 4.2" in html and "the box marks where" in html


# item 8: broken pipe ----------------------------------------------------------------------------


@POSIX
def test_a_broken_pipe_ends_quietly_with_141(model_file):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "midnite", "layers", model_file, "--size", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_main_returns_141_on_a_broken_pipe(model_file, monkeypatch):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise OSError("no file")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["layers", model_file, "--size", "16"]) == 141
