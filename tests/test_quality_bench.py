"""benchmarks/quality.py: a smoke run of its --quick form, so that the benchmark cannot rot."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def quality():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("quality")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.slow  # renders on Lite0 and judges with Lite1 and Lite2
def test_quick_run_prints_the_tables_and_writes_json_and_images(
    quality, one_thread, tmp_path, capsys
):
    out, path = tmp_path / "img", tmp_path / "q.json"
    # --recipes class: a recipe row through render_recipe (render(recipe=) or its fallback)
    argv = ["--quick", "--json", str(path), "--out", str(out), "--recipes", "class"]
    assert quality.main(argv) == 0
    text = capsys.readouterr().out
    assert "1 goldfish, 130 flamingo" in text
    headers = [f"{j} top{k}" for j in ("Lite0", "Lite1", "Lite2") for k in (1, 5)]
    for column in [*headers, *quality.NATURAL_HEADERS, "seconds", "seconds per class"]:
        assert re.search(rf"\| {re.escape(column)} +\|", text), column
    methods = [*quality.METHODS, "midnite: recipe 'class'"]
    for method in [*methods, quality.PHOTOS_ROW]:
        assert f"| {method} " in text
    assert "iter_n 2 of 300 (cut for time)" in text

    data = json.loads(path.read_text())
    assert data["quick"] is True and "date" in data["machine"]
    classes = data["sections"]["classes"]
    assert classes["classes"] == {"1": "goldfish", "130": "flamingo"}
    assert [r["method"] for r in classes["rows"]] == methods
    assert classes["natural_size"] == 224 and classes["photos"]["TV / photos"] == 1.0
    for row in classes["rows"]:
        nat = row["naturalness"]
        # under 224 px (--quick) a batch is measured at its own size, beside photos of it
        assert nat["reference"].startswith("shipped photos at ")
        assert row["TV / photos"] == nat["total_variation_ratio"] > 0
        assert row["slope - photos"] == pytest.approx(
            row["spectrum slope"] - nat["reference_spectrum_slope"]
        )
        assert row["natural"] in ("yes", "no")
        for judge in ("Lite0", "Lite1", "Lite2"):
            top1, top5 = row[f"{judge} top1"], row[f"{judge} top5"]
            assert top1 in (0.0, 0.5, 1.0) and top1 <= top5 <= 1.0
        assert row["spectrum slope"] < 0.5 and 0 <= row["HF share"] <= 1 and row["seconds"] > 0
    for ranks in classes["ranks"].values():
        assert set(ranks) == {"Lite0", "Lite1", "Lite2"}
        assert all(1 <= r <= 1000 for judge in ranks.values() for r in judge.values())

    recovery = {r["method"]: r for r in data["sections"]["recovery"]["rows"]}
    assert recovery["planted pattern (ceiling)"]["recovery (mean)"] > 0.99
    assert recovery["uniform noise (chance)"]["recovery (mean)"] < quality.RECOVERY_THRESHOLD

    for name in (
        "classes.png",
        "recovery.png",
        "midnite_class_recipe.png",
        "midnite_recipe_class.png",
    ):
        assert (out / name).is_file()
    from PIL import Image

    with Image.open(out / "classes.png") as fig:  # one row per method, photos last if present
        photo_rows = 1 if importlib.util.find_spec("skimage") else 0
        assert fig.height == pad_rows(len(methods) + photo_rows)
    assert sorted(p.name for p in (out / "classic_class_cell").iterdir()) == [
        "001_goldfish.png",
        "130_flamingo.png",
    ]


def pad_rows(n: int, side: int = 160, pad: int = 4) -> int:
    return n * (side + pad) + pad


def test_the_ten_classes_are_distinct_imagenet_classes(quality):
    assert len(quality.CLASSES) == 10
    assert all(0 <= c < 1000 for c in quality.CLASSES)
    assert len(set(quality.CLASSES.values())) == 10
    other = quality.OTHER_CLASSES  # the check set: ten more, none of the tuned ten
    assert len(other) == 10 and all(0 <= c < 1000 for c in other)
    assert not set(other) & set(quality.CLASSES)
    assert {**quality.CLASSES, **other} == quality.NAMES


def test_held_out_naturalness_compares_with_the_held_out_photos(quality):
    from midnite.photos import held_out_photos

    names, held = held_out_photos(quality.NATURAL_SIZE)
    noise = torch.rand(2, 3, 224, 224, generator=torch.manual_seed(0))
    text, rows = quality.held_out_naturalness({"photos": held, "noise": noise})
    assert ", ".join(names) in text and "| noise " in text
    assert rows["photos"]["slope - photos"] == pytest.approx(0.0, abs=1e-9)
    assert rows["photos"]["HF / photos"] == pytest.approx(1.0)
    assert rows["photos"]["photo band"] == "yes"
    assert rows["noise"]["photo band"] == "no" and rows["noise"]["HF / photos"] > 4


def test_ranks_are_one_based_and_count_higher_logits(quality):
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.tensor([[0.0, 3.0, 1.0, 2.0]]).expand(len(x), 4) + 0 * self.w

    images = torch.zeros(2, 3, 8, 8)
    ranks = quality.target_ranks(images, torch.tensor([1, 2]), {"Lite1": Fixed()})
    assert ranks == {"Lite1": [1, 3]}


def test_unknown_section_is_refused(quality, capsys):
    with pytest.raises(SystemExit):
        quality.main(["--sections", "classes,nope"])
    assert "unknown sections ['nope']" in capsys.readouterr().err


def test_naturalness_columns_and_the_photos_row(quality):
    row = quality.photos_row()
    assert row["method"] == quality.PHOTOS_ROW
    assert row["slope - photos"] == 0.0 and row["HF / photos"] == 1.0 == row["TV / photos"]
    assert row["natural"] == "yes"
    assert "shipped photos at 224x224 px" in row["settings"]
    assert -3.0 < row["spectrum slope"] < -2.5 and 0 < row["HF share"] < 0.05
    assert list(quality.NATURAL_HEADERS) == [
        "spectrum slope",
        "slope - photos",
        "HF share",
        "HF / photos",
        "TV",
        "TV / photos",
        "natural",
        "photo band",
    ]
    noise = quality.at_natural_size(torch.rand(2, 3, 300, 300, generator=torch.manual_seed(0)))
    assert noise.shape == (2, 3, 224, 224)  # shrunk
    small = torch.rand(1, 3, 64, 64)
    assert quality.at_natural_size(small) is small  # never enlarged
    cols = quality.natural_columns(quality.naturalness(noise))
    assert cols["natural"] == "no" and cols["TV / photos"] > 2


class _Logits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_render_recipe_passes_the_name_or_the_recipes_values(quality, monkeypatch):
    from midnite.engine.objectives import class_logit

    model, objectives = _Logits(), [class_logit(0), class_logit(1)]
    # the real render(), with or without recipe= (recipes by name): the feature recipe's values
    result = quality.render_recipe(model, objectives, "feature", size=16, steps=2, progress=False)
    assert result.images.shape == (2, 3, 16, 16)
    assert result.settings["steps"] == 2  # settings win over the recipe
    assert result.settings["lr"] == quality.recipes.FEATURE.lr  # not the class recipe's 0.08
    assert "class" not in result.settings["transforms"].lower()

    seen = {}

    def render_with_recipes(model, objective, *, recipe=None, **settings):
        seen.clear()
        seen.update(settings, recipe=recipe)
        return "rendered"

    def render_without_recipes(model, objective, **settings):
        seen.clear()
        seen.update(settings)
        return "rendered"

    monkeypatch.setattr(quality.midnite, "render", render_with_recipes)
    assert quality.render_recipe(model, objectives, "natural", steps=3) == "rendered"
    assert seen == {"recipe": "natural", "steps": 3}

    monkeypatch.setattr(quality.midnite, "render", render_without_recipes)
    assert quality.render_recipe(model, objectives, "class", steps=3) == "rendered"
    c = quality.recipes.CLASS
    assert seen == {
        "steps": 3,
        "lr": c.lr,
        "param": c.param,
        "decorrelate": c.decorrelate,
        "transforms": c.transforms,
    }
    with pytest.raises(ValueError, match=r"unknown recipe 'no_such'; this midnite has \["):
        quality.render_recipe(model, objectives, "no_such")
    assert set(quality.recipe_names()) >= {"class", "feature"}


def test_labelled_rows_figure_has_one_row_per_label(quality):
    rows = {
        "a method": [torch.zeros(3, 20, 20), torch.ones(3, 30, 30)],
        "another method with a long name that wraps": [torch.full((3, 8, 8), 0.5)],
    }
    fig = quality.labelled_rows(rows, columns=3, side=40)
    pad, label_w = 4, 200
    assert fig.shape == (3, 2 * (40 + pad) + pad, label_w + 3 * (40 + pad) + pad)
    assert float(fig.min()) >= 0.0 and float(fig.max()) <= 1.0
    first = fig[:, pad + 5 : pad + 35, label_w + pad + 5 : label_w + pad + 35]
    assert float(first.max()) == 0.0  # the black image, first row first column
    label = fig[:, pad : pad + 40, :label_w]
    assert float(label.min()) < 0.5  # text was drawn
    blank = fig[:, 2 * pad + 40 + 5 : 2 * pad + 75, label_w + 2 * (40 + pad) + 5 :]
    assert float(blank.min()) == 1.0  # the short row stays blank at the end
    with pytest.raises(ValueError, match=r"at most 1 images, got 2"):
        quality.labelled_rows({"x": [torch.zeros(3, 4, 4)] * 2}, columns=1)


def test_unknown_recipe_is_refused_before_rendering(quality, capsys):
    with pytest.raises(SystemExit):
        quality.main(["--recipes", "class,nope"])
    assert "unknown recipes ['nope']" in capsys.readouterr().err


def test_only_recipe_rows_with_settings_and_seed(quality, tmp_path, capsys):
    path = tmp_path / "q.json"
    argv = ["--quick", "--sections", "classes", "--json", str(path), "--only-recipes"]
    argv += ["--recipes", "natural", "--recipe-settings", '{"crops": {"count": 2}}', "--seed", "3"]
    assert quality.main(argv) == 0
    classes = json.loads(path.read_text())["sections"]["classes"]
    assert [r["method"] for r in classes["rows"]] == ["midnite: recipe 'natural'"]
    assert classes["recipe_settings"] == {"crops": {"count": 2}, "seed": 3}
    row = classes["rows"][0]
    assert "2 crops, seed 3" in row["settings"]
    assert row["photo band"] in ("yes", "no") and row["naturalness"]["within_photos"] in (
        True,
        False,
    )
    assert "| midnite: recipe 'natural' " in capsys.readouterr().out
    # the check set of ten other classes, and the colour setting from JSON
    argv = ["--quick", "--sections", "classes", "--json", str(path), "--only-recipes"]
    argv += ["--recipes", "natural", "--class-set", "other"]
    argv += ["--recipe-settings", '{"colour": {"saturation": 1.0, "mean": false}}']
    assert quality.main(argv) == 0
    classes = json.loads(path.read_text())["sections"]["classes"]
    assert classes["classes"] == {"9": "ostrich", "22": "bald eagle"}
    assert "colour {'saturation': 1.0, 'mean': False}" in classes["rows"][0]["settings"]
    assert "9 ostrich, 22 bald eagle" in capsys.readouterr().out
