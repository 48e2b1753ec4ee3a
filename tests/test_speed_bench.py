"""A smoke run of benchmarks/speed.py (tiny sizes), so that the benchmark cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # EfficientNet-Lite0 end to end; minutes on a busy 2-core CPU

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.usefixtures("one_thread")  # see conftest: spinning threads on a busy CPU
def test_speed_benchmark_quick(tmp_path, capsys):
    sys.path.insert(0, str(BENCH))
    try:
        import speed
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "speed.json"
    assert speed.main(["--quick", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for title in ("Classic API", "Early stop", "render() step", "one batch vs one by one"):
        assert title in text
    data = json.loads(out.read_text())
    assert set(data["sections"]) == {"classic", "early", "render", "batch"}
    classic_rows = data["sections"]["classic"]
    assert len(classic_rows) == 2 and all(row["ratio"] > 0 for row in classic_rows)
    early = data["sections"]["early"]
    assert all(0 < row["FLOP share"] < 1 and row["time share (bare prefix)"] > 0 for row in early)
    batch = data["sections"]["batch"]
    assert [row["what"] for row in batch] == ["render()", "bare fwd+bwd (the ceiling)"]
    assert all(row["units"] == 4 and row["speed-up"] > 0 for row in batch)
    render = data["sections"]["render"]
    configs = [(row["batch"], row["fold_bn"]) for row in render]
    assert configs == [(1, True), (1, True), (4, True), (1, False)]
    assert all(row["bare fwd+bwd ms"] > 0 and row["ratio"] > 0 for row in render)
