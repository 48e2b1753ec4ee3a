"""``midnite catalogue`` and ``midnite.catalogue``: the default layers, the plan, reruns, views."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from midnite import catalogue as cat
from midnite import records as rec
from midnite.cli import main
from midnite.engine import layers
from midnite.jobs import executors

MODEL_SRC = """
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, stride=stride)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


def net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Sequential(Block(4, 4), Block(4, 6, 2), Block(6, 6)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )
"""

FAST = ["--steps", "3", "--size", "16", "--no-progress"]


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class ResNetLike(nn.Module):
    """torchvision's shape: stem, ``layer1``/``layer2`` of blocks, pooled head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same weights whatever ran before
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Block(4, 4), Block(4, 4))
        self.layer2 = nn.Sequential(Block(4, 6), Block(6, 6), Block(6, 6))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.stem(x))))


class ListNet(nn.Module):
    """EfficientNet's shape: a ``_blocks`` ModuleList run in a loop; a map as output."""

    def __init__(self, head: bool = True):
        super().__init__()
        torch.manual_seed(0)  # the same weights whatever ran before
        self._blocks = nn.ModuleList([Block(3, 4), Block(4, 4), Block(4, 4), Block(4, 4)])
        self.small = nn.Sequential(Block(4, 4), Block(4, 4))  # fewer blocks: not chosen
        self.head = head
        self.fc = nn.Linear(4, 7)

    def forward(self, x):
        for block in self._blocks:
            x = block(x)
        x = self.small(x)
        return self.fc(x.mean((2, 3))) if self.head else x


class Staged(nn.Module):
    """timm's staged shape: ``blocks`` of stages of blocks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same weights whatever ran before
        self.blocks = nn.Sequential(
            nn.Sequential(Block(3, 4), Block(4, 4)), nn.Sequential(Block(4, 4), Block(4, 5))
        )

    def forward(self, x):
        return self.blocks(x).mean((2, 3))


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_SRC)
    return f"{path}:net"


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


def pngs(folder: Path) -> dict[str, bytes]:
    """The unit images under ``folder`` (not their alpha maps)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*.png"))
        if not p.name.endswith("_alpha.png")
    }


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.json")}


# the default layers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (ResNetLike(), ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer2.2", ""]),
        (ListNet(), ["_blocks.0", "_blocks.1", "_blocks.2", "_blocks.3", ""]),
        (ListNet(head=False), ["_blocks.0", "_blocks.1", "_blocks.2", "_blocks.3"]),
        (Staged(), ["blocks.0.0", "blocks.0.1", "blocks.1.0", "blocks.1.1", ""]),
    ],
    ids=["resnet-like", "modulelist", "no-class-output", "staged"],
)
def test_default_layers_are_the_repeated_blocks_and_the_class_output(model, expected):
    assert cat.default_layers(model, layers(model, 16)) == expected


def test_no_blocks_and_no_classes_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(cat.CatalogueError, match="--layers PATTERN"):
        cat.select_layers(model, layers(model, 16))


def test_globs_select_layers_in_forward_order():
    model = ResNetLike()
    table = layers(model, 16)
    assert cat.select_layers(model, table, ["layer2.?", "layer1.1"]) == [
        "layer1.1",
        "layer2.0",
        "layer2.1",
        "layer2.2",
    ]
    assert cat.select_layers(model, table, ["(output)"]) == [""]
    with pytest.raises(cat.CatalogueError, match=r"'layer3\.\*' matches no layer.*did you mean"):
        cat.select_layers(model, table, ["layer3.*"])
    with pytest.raises(cat.CatalogueError, match="empty layer pattern"):
        cat.select_layers(model, table, [" "])


# the plan -------------------------------------------------------------------------------------


def test_plan_is_pure_and_seeds_depend_on_layer_view_units():
    model = ResNetLike()
    table = layers(model, 16)
    shapes = {i.name: tuple(i.shape) for i in table if i.shape}
    settings = cat.Settings(size=(16, 16), steps=2, batch=3)
    a = cat.plan(model, "m", ["layer1.0", ""], shapes, settings=settings, views=cat.VIEWS)
    b = cat.plan(model, "m", ["layer1.0", ""], shapes, settings=settings, views=cat.VIEWS)
    assert [(x.layer, x.view, x.units, x.seed) for x in a] == [
        (x.layer, x.view, x.units, x.seed) for x in b
    ]
    assert [x.key(x.units[0]) for x in a] == [x.key(x.units[0]) for x in b]
    # layer1.0: 4 channels in batches of 3, twice, and 4 diversity batches; output: no diversity
    assert [(x.layer, x.view, x.units) for x in a] == [
        ("layer1.0", "channel", (0, 1, 2)),
        ("layer1.0", "channel", (3,)),
        ("layer1.0", "negative", (0, 1, 2)),
        ("layer1.0", "negative", (3,)),
        *[("layer1.0", "diversity", (u,)) for u in range(4)],
        ("", "channel", (0, 1, 2)),
        ("", "negative", (0, 1, 2)),
    ]
    assert len({x.seed for x in a}) == len(a)
    assert [x.images for x in a if x.view == "diversity"] == [cat.DIVERSITY_IMAGES] * 4
    other = ResNetLike()
    with torch.no_grad():
        other.load_state_dict(model.state_dict())
        other.stem.bias += 1
    changed = cat.plan(other, "m", ["layer1.0"], shapes, settings=settings)[0]
    assert changed.key(0)["weights"] != a[0].key(0)["weights"]
    assert changed.seed == a[0].seed  # the seed is the plan's; the weights are in the key


def test_views_optimize_the_right_objectives(tmp_path):
    model = ResNetLike()
    shapes = {i.name: tuple(i.shape) for i in layers(model, 16) if i.shape}
    settings = cat.Settings(size=(16, 16), steps=8, batch=4)
    work = cat.plan(model, "m", ["layer2.0.conv"], shapes, settings=settings, views=cat.VIEWS)
    summary = cat.run(work, tmp_path, model=model, progress=False)
    assert summary.rendered == 6 * 3 and not summary.failed
    folder = tmp_path / "layer2.0.conv"
    for view in cat.VIEWS:
        record = json.loads((folder / f"{view}_0001.json").read_text())
        assert record["objective"] == record["view"] == view
        if view != "diversity":  # each climbs its objective: negative's is minus the channel's
            assert record["activation"]["final"] > record["activation"]["start"]
    # a record names its own unit's objective (one record builder for render and catalogue)
    negative = json.loads((folder / "negative_0001.json").read_text())["objective_repr"]
    assert negative == "-channel('layer2.0.conv', 1)"
    assert (
        "diversity(" in json.loads((folder / "diversity_0001.json").read_text())["objective_repr"]
    )
    # the saved images: the negative view's channel is below the channel view's and gray's
    from PIL import Image

    def channel_mean(image: Image.Image) -> float:
        pixels = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
        acts = {}
        hook = model.layer2[0].conv.register_forward_hook(lambda m, i, o: acts.update(a=o))
        with torch.no_grad():
            model(pixels.float().view(1, 16, 16, 3).permute(0, 3, 1, 2) / 255)
        hook.remove()
        return float(acts["a"][0, 1].mean())

    low = channel_mean(Image.open(folder / "negative_0001.png"))
    high = channel_mean(Image.open(folder / "channel_0001.png"))
    gray = channel_mean(Image.new("RGB", (16, 16), (128, 128, 128)))
    assert low < gray < high
    strip = Image.open(folder / "diversity_0001.png")
    assert strip.size == (16 * cat.DIVERSITY_IMAGES, 16)


class Counting:
    """An executor wrapped around InProcess: the protocol is all ``run`` needs.

    It hands back copies of the batches, as a distributed executor would.
    """

    def __init__(self, model):
        self.inner, self.batches = cat.InProcess(model), 0

    def run(self, batches):
        for batch, result in self.inner.run(batches):
            self.batches += 1
            yield dataclasses.replace(batch), result


def test_run_takes_any_executor(tmp_path):
    model = ResNetLike()
    shapes = {i.name: tuple(i.shape) for i in layers(model, 16) if i.shape}
    work = cat.plan(
        model, "m", ["layer1.0"], shapes, settings=cat.Settings(size=(16, 16), steps=2)
    )  # the default view: channel
    ex = Counting(model)
    assert cat.run(work, tmp_path, executor=ex, progress=False).rendered == 4
    assert ex.batches == 1
    assert cat.run(work, tmp_path, executor=ex, progress=False).rendered == 0
    assert ex.batches == 1


# the command ----------------------------------------------------------------------------------


def test_catalogue_writes_layers_records_and_index(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("catalogue", model_file, "--out", out, "--views", "channel,diversity", *FAST) == 0
    assert "rendered 37 of 37 units" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "1.0",
        "1.1",
        "1.2",
        "catalogue.json",
        "index.html",
        "output",
    ]
    assert (out / "1.1" / "channel_0005.png").is_file()
    assert (out / "1.1" / "diversity_0005.json").is_file()
    assert not (out / "output" / "diversity_0000.json").exists()  # flat: no diversity view
    record = json.loads((out / "1.1" / "channel_0002.json").read_text())
    assert record["format"] == rec.FORMAT and record["key"]["steps"] == 3
    index = (out / "index.html").read_text()
    assert 'href="1.1/index.html"' in index and "12 of 12" in index
    assert (out / "1.1" / "index.html").is_file()
    assert (out / "1.1" / "0005.html").is_file()  # the unit's page (midnite.site)
    plan = json.loads((out / "catalogue.json").read_text())
    assert plan["layers"]["1.1"] == {
        "layer": "1.1",
        "units": 6,
        "views": ["channel", "diversity"],
        "planned": 12,
        "done": 12,
        "shape": [6, 8, 8],  # the model page shows it
    }


def test_rerun_changed_steps_and_added_layer(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["catalogue", model_file, "--out", out, "--no-progress", "--layers", "1.0"]
    fast = ["--size", "16"]
    assert run(*base, *fast, "--steps", "2") == 0
    first = pngs(out)
    times = mtimes(out)
    assert len(first) == 4
    capsys.readouterr()
    assert run(*base, *fast, "--steps", "2") == 0
    assert "rendered 0 of 4 units (4 up to date)" in capsys.readouterr().out
    assert mtimes(out) == times
    assert run(*base, "1.2", *fast, "--steps", "2") == 0  # an added layer: only its units
    assert "rendered 6 of 10 units (4 up to date)" in capsys.readouterr().out
    assert run(*base, "1.2", *fast, "--steps", "3") == 0  # a changed setting: all again
    assert "rendered 10 of 10 units (0 up to date)" in capsys.readouterr().out


def test_same_command_same_bytes_in_two_folders(model_file, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--layers", "1.1", "(output)", "--views", "channel,negative,diversity", *FAST]
    assert run("catalogue", model_file, "--out", a, *args) == 0
    assert run("catalogue", model_file, "--out", b, *args) == 0
    assert pngs(a) == pngs(b) and len(pngs(a)) == 6 * 3 + 5 * 2


def test_damaged_unit_is_rendered_again(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["catalogue", model_file, "--out", out, "--layers", "1.0", *FAST]
    assert run(*args) == 0
    path = out / "1.0" / "channel_0002.json"
    path.write_text(path.read_text()[:50])
    capsys.readouterr()
    assert run(*args) == 0
    captured = capsys.readouterr()
    assert "damaged unit 1.0/channel_0002: its record is not valid JSON" in captured.err
    assert "rendering it again" in captured.err
    assert "rendered 1 of 4 units (3 up to date)" in captured.out
    assert json.loads(path.read_text())["unit"] == 2


def test_dry_run_prints_plan_and_estimate_and_renders_nothing(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["catalogue", model_file, "--out", out, "--views", "channel,negative", "--dry-run"]
    assert run(*argv, *FAST) == 0
    text = capsys.readouterr().out
    assert "plan: 4 layer(s), 42 unit renders" in text
    assert "1.1  [6x8x8]  6 units  views channel, negative" in text
    assert "(output)  [5]  5 units" in text
    assert "1 worker" in text and "8 workers" in text and "64 workers" in text
    assert "dry run: nothing rendered" in text
    assert not out.exists()
    assert run("catalogue", model_file, "--out", out, "--layers", "1.0", *FAST) == 0
    capsys.readouterr()
    assert run(*argv, "--layers", "1.0", *FAST) == 0
    assert "4 of 8 unit renders already done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--views", "channel,sideways"], "unknown view 'sideways'; accepted: channel, negative"),
        (["--units", "0-4", "--layers", "1.0"], "layer '1.0': units 0-4 out of range for 4"),
        (["--layers", ""], "empty layer pattern"),
        (["--layers", "1.9"], "'1.9' matches no layer with units; did you mean"),
        (["--units", "3-1"], "runs backwards"),
        (["--layers", "(output)", "--views", "diversity"], "nothing to render: the diversity"),
    ],
)
def test_bad_input_is_one_line_and_status_2(model_file, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert run("catalogue", model_file, "--out", out, *extra, *FAST) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (out / "index.html").exists()


def test_busy_folder_is_status_3(model_file, tmp_path, capsys):
    from midnite import records as rec

    out = tmp_path / "out"
    out.mkdir()
    with rec.lock_folder(out):
        assert run("catalogue", model_file, "--out", out, "--layers", "1.0", *FAST) == 3
    assert "another midnite run is writing" in capsys.readouterr().err
    assert not (out / "1.0").exists()


def test_not_enough_memory_is_status_4_before_anything_starts(
    model_file, tmp_path, capsys, monkeypatch
):
    from midnite.jobs import memory

    monkeypatch.setattr(memory, "available_memory", lambda dev: 1024)
    out = tmp_path / "out"
    assert run("catalogue", model_file, "--out", out, "--layers", "1.0", *FAST) == 4
    assert "use a smaller --size" in capsys.readouterr().err
    assert not (out / "1.0").exists()


def test_plan_takes_unit_lists_and_counts_a_view_once():
    model = ResNetLike()
    shapes = {i.name: tuple(i.shape) for i in layers(model, 16) if i.shape}
    settings = cat.Settings(size=(16, 16), steps=2)
    work = cat.plan(
        model, "m", ["layer1.0"], shapes, settings=settings, units=[3, 1], views=["channel"] * 2
    )
    assert [(b.view, b.units) for b in work] == [("channel", (1, 3))]
    with pytest.raises(cat.CatalogueError, match=r"'layer1.0': units \[4\] out of range for 4"):
        cat.plan(model, "m", ["layer1.0"], shapes, settings=settings, units=[4])


class Interrupted(Counting):
    """Ctrl-C after the first batch."""

    def run(self, batches):
        for item in super().run(batches):
            yield item
            raise KeyboardInterrupt


def test_interrupted_run_keeps_whole_units_and_resumes(tmp_path):
    model = ResNetLike()
    shapes = {i.name: tuple(i.shape) for i in layers(model, 16) if i.shape}
    settings = cat.Settings(size=(16, 16), steps=2, batch=2)
    work = cat.plan(model, "m", ["layer1.0"], shapes, settings=settings)
    with pytest.raises(KeyboardInterrupt):
        cat.run(work, tmp_path, executor=Interrupted(model), progress=False)
    assert sorted(p.name for p in (tmp_path / "layer1.0").glob("*.png")) == [
        "channel_0000.png",
        "channel_0000_alpha.png",
        "channel_0001.png",
        "channel_0001_alpha.png",
    ]
    assert "2 of 4" in (tmp_path / "index.html").read_text()
    summary = cat.run(work, tmp_path, model=model, progress=False)
    assert (summary.rendered, summary.up_to_date) == (2, 2)


def test_a_render_that_raises_is_status_1_and_saves_nothing(
    model_file, tmp_path, capsys, monkeypatch
):
    def boom(model, config, progress=True):
        raise RuntimeError("boom")

    monkeypatch.setattr(executors, "render_config", boom)
    out = tmp_path / "out"
    assert run("catalogue", model_file, "--out", out, "--layers", "1.0", *FAST) == 1
    err = capsys.readouterr().err
    assert "4 of 4 units failed, nothing saved for them" in err and "RuntimeError: boom" in err
    assert not list(out.rglob("*.png"))
    assert "0 of 4" in (out / "index.html").read_text()


def test_help_states_the_default_layer_rule(capsys):
    assert run("catalogue", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "repeated blocks" in text and "nn.Sequential/ModuleList" in text
    assert "--dry-run" in text and "channel, negative, diversity" in text
