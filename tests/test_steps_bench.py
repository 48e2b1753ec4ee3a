"""benchmarks/steps.py's step-size schedules: the optimizer they build and the table they print."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import bench_module


def bench():
    return bench_module("steps")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("constant", [0.1, 0.1, 0.1, 0.1, 0.1]),
        ("cosine", [0.1 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)]),
    ],
)
def test_scheduled_adam_follows_its_schedule(kind, expected):
    x = torch.zeros(2, requires_grad=True)
    opt = bench().scheduled_adam(kind, 4)([x], lr=0.1)
    assert isinstance(opt, torch.optim.Adam)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        x.grad = torch.ones(2)
        opt.step()
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[-1] == pytest.approx(0.1 if kind == "constant" else 0.0, abs=1e-12)


def test_schedules_table_compares_with_the_256_step_reference():
    b = bench()
    shots = {str(s): [1.0, 2.0] for s in b.SHOTS}
    shots["256"], shots["128"] = [2.0, 4.0], [1.8, 3.0]
    nat = [[-2.0, 4.0, 2.0], [-2.2, 6.0, 3.0]]
    ref = {"L": {"scores": shots, "natural": {"256": nat, "128": nat}}}
    done = [{"layer": "L", "kind": "cosine", "lr": 0.1, "final": [1.0, 3.9], "natural": nat}]
    text = b._schedules_table(ref, done)
    rows = [r for r in text.splitlines() if r.startswith("| L")]
    assert len(rows) == 3  # 256 and 128 steps at the recipe's lr, then the schedule
    assert "| 0.825 " in rows[1] and "| 0.750 " in rows[1]  # median of 0.9 and 0.75; worst
    assert "cosine" in rows[2] and "| 0.738 " in rows[2] and "| 0.500 " in rows[2]


def test_views_table_reads_the_activation_for_diversity_and_the_objective_otherwise():
    b = bench()
    shots = [str(s) for s in b.SHOTS]

    def series(at_auto, last):  # 0.5x the 256-step value before 128 steps, then at_auto
        return {s: [a * (0.5 if int(s) < 128 else 1.0) for a in at_auto] for s in shots} | {
            "256": last
        }

    nat = {s: [[-2.0, 4.0, 2.0], [-2.4, 6.0, 3.0]] for s in shots}
    negative = {"layer": "L", "view": "negative", "auto": 128, "natural": nat,
                "scores": series([1.9, 0.5], [2.0, 1.0])}  # fmt: skip
    diversity = {
        "layer": "L", "view": "diversity", "auto": 128, "natural": nat,
        "scores": series([-9.0, -9.0], [-8.0, -8.0]),  # objective <= 0: not a ratio
        "activation": series([3.0, 4.0], [3.0, 4.0]),
        "similarity": {s: [0.4, 0.2] for s in shots} | {"256": [0.1, 0.1]},
    }  # fmt: skip
    text = b._views_table([negative, diversity])
    rows = [r for r in text.splitlines() if r.startswith("| L")]
    assert len(rows) == 2
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    # negative: ratios 0.95 and 0.5 at 128 steps; 95% reached at 128 (unit 0) and 256 (unit 1)
    assert cells[0][1:8] == ["negative", "128", "2", "192 (256)", "0.725", "0.500", "-"]
    # diversity: activation at 128 equals the 256-step value; similarity 0.3 then 0.1
    assert cells[1][1:8] == ["diversity", "128", "2", "128 (128)", "1.000", "1.000",
                             "0.300 / 0.100"]  # fmt: skip
    assert cells[1][8:] == ["-2.20 / -2.20", "5.00 / 5.00", "2.50 / 2.50"]
