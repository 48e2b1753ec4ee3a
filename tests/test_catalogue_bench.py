"""Smoke runs of benchmarks/catalogue.py (tiny sizes), so that the benchmark cannot rot.

The Ray run is marked ``ray_cluster`` too (run only when asked): Ray's local instance binds to
the machine's own address as well as the loopback (see tests/test_catalogue_ray.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import catalogue  # benchmarks/catalogue.py, not midnite.catalogue
    finally:
        sys.path.remove(str(BENCH))
    return catalogue


def test_schedule_hands_batches_in_order_to_the_first_idle_worker():
    b = bench()
    assert b.schedule([3.0, 1.0, 1.0, 1.0], 2) == 3.0  # 3 | 1+1+1
    assert b.schedule([1.0, 1.0, 3.0], 2) == 4.0  # 1+3 | 1: order matters, not balanced
    assert b.schedule([2.0, 2.0], 1) == 4.0
    assert b.schedule([], 8) == 0.0


@pytest.mark.slow  # EfficientNet-Lite0 end to end: seconds to a minute
@pytest.mark.usefixtures("one_thread")
def test_catalogue_benchmark_quick_without_ray(tmp_path, capsys):
    import torch

    b = bench()
    threads = torch.get_num_threads()
    out = tmp_path / "catalogue.json"
    assert b.main(["--quick", "--no-ray", "--repeats", "2", "--json", str(out)]) == 0
    assert torch.get_num_threads() == threads  # left as it was
    text = capsys.readouterr().out
    for title in ("Small catalogue on Lite0", "Per batch", "Same bytes?", "Projection"):
        assert title in text
    data = json.loads(out.read_text())
    runs = data["small"]["runs"]
    assert [r["key"] for r in runs] == ["same", "whole"]  # 1 and 2 threads, no Ray
    for r in runs:
        assert r["units"] == 12 and r["estimate s"] > 0
        walls = [x["seconds"] for x in r["rounds"]]
        assert len(walls) == 2 and r["wall s"] == pytest.approx(sum(walls) / 2)  # the median
        assert r["units/hour"] == pytest.approx(sum(3600 * 12 / w for w in walls) / 2)
        for round_ in r["rounds"]:
            waited, rendered = round_["batch_waited"], round_["batch_rendered"]
            assert len(waited) == len(rendered) == 8
            # the driver cannot see a batch before its render is done
            assert all(w >= s for w, s in zip(waited, rendered, strict=True))
    (same,) = data["bytes"]
    assert same["PNGs"] == 24  # both rounds compared
    proj = data["projection"]
    assert proj["ray_overhead_per_batch_s"] == 0.0
    blocks, auto, output = proj["rows"]
    assert blocks["unit renders"] == 1808 * 3 and output["unit renders"] == 2000
    assert blocks["_1"] >= blocks["_8"] >= blocks["_64"] > 0
    assert auto["unit renders"] == blocks["unit renders"] and "--steps auto" in auto["catalogue"]
    assert auto["_1"] >= auto["_64"] > 0  # --quick's few steps: no order against the schedule
    assert blocks["_1"] == pytest.approx(
        proj["measured_over_estimate"] * sum(r["estimate s"] for r in proj["layers"][:-1])
    )
    assert [r["layer"] for r in proj["layers"]] == [f"_blocks.{i}" for i in range(16)] + [
        "(output)"
    ]
    assert sum(r["channels"] for r in proj["layers"][:-1]) == 1808


@pytest.mark.slow
@pytest.mark.ray_cluster
@pytest.mark.usefixtures("one_thread")
def test_catalogue_benchmark_quick_on_local_ray(tmp_path):
    pytest.importorskip("ray")
    b = bench()
    out = tmp_path / "catalogue.json"
    assert b.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    ray_run = data["small"]["runs"][-1]
    assert ray_run["key"] == "ray" and ray_run["units"] == 12 and ray_run["startup s"] > 0
    (ray_over,) = [r for r in data["overhead"] if r["executor"] == ray_run["executor"]]
    assert ray_over["batches"] == 8
    ray_bytes = data["bytes"][-1]
    assert ray_bytes["byte-identical"] == "12 of 12"  # the same bytes as in-process
    assert data["projection"]["ray_overhead_per_batch_s"] > 0


def test_the_dry_runs_expected_time_is_read_and_tabled():
    b = bench()
    said = "plan: ...\nexpected time of the command: 12.5 min on 2 worker(s) in a pool, ...\n"
    assert b.expected(said) == 750.0
    assert b.expected("expected time of the command: 42 s on 1 worker(s)") == 42.0
    with pytest.raises(RuntimeError, match="no expected time"):
        b.expected("expected time of 4 renders: 1 worker 3 s")
    found = [
        {"case": "idle", "setting": "x", "round": r, "load": 1.0, "estimate": 10.0, "measured": m}
        for r, m in ((1, 9.0), (2, 12.0), (3, 30.0))
    ]
    (row,) = b.dry_rows(found)
    assert row["estimate s"] == 10.0 and row["measured s"] == 12.0
    assert row["measured / estimate"] == 1.2 and row["rounds"] == "0.90, 1.20, 3.00"


@pytest.mark.slow  # EfficientNet-Lite0 end to end, each command in a fresh process: a minute
def test_dry_vs_run_quick(tmp_path, capsys):
    b = bench()
    out = tmp_path / "dry.json"
    assert b.main(["--dry-vs-run", "--quick", "--repeats", "1", "--json", str(out)]) == 0
    assert "The dry run's expected time of the command" in capsys.readouterr().out
    runs = json.loads(out.read_text())["runs"]
    assert [r["setting"] for r in runs] == [
        "default (no options)",
        "--workers 1 --images (4 photos)",
    ]
    for r in runs:
        assert r["estimate"] > 0 and r["measured"] > 0
        assert "expected time of the command" in r["said"] and "% of a CPU" in r["said"]
    assert "dataset examples" in runs[-1]["said"]
