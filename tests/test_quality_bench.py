"""benchmarks/quality.py: a smoke run of its --quick form, so that the benchmark cannot rot."""

from __future__ import annotations

import importlib
import json
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
    assert quality.main(["--quick", "--json", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 goldfish, 130 flamingo" in text
    headers = [f"{j} top{k}" for j in ("Lite0", "Lite1", "Lite2") for k in (1, 5)]
    for column in [*headers, "spectrum slope", "HF share", "seconds"]:
        assert f" {column} |" in text
    for method in quality.METHODS:
        assert f"| {method} " in text
    assert "iter_n 2 of 300 (cut for time)" in text

    data = json.loads(path.read_text())
    assert data["quick"] is True and "date" in data["machine"]
    classes = data["sections"]["classes"]
    assert classes["classes"] == {"1": "goldfish", "130": "flamingo"}
    assert [r["method"] for r in classes["rows"]] == list(quality.METHODS)
    for row in classes["rows"]:
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

    for name in ("classes.png", "recovery.png", "midnite_class_recipe.png"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "classic_class_cell").iterdir()) == [
        "001_goldfish.png",
        "130_flamingo.png",
    ]


def test_the_ten_classes_are_distinct_imagenet_classes(quality):
    assert len(quality.CLASSES) == 10
    assert all(0 <= c < 1000 for c in quality.CLASSES)
    assert len(set(quality.CLASSES.values())) == 10


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
