"""benchmarks/lucent_side.py: the hooks Lucent leaves on the shared model are removed, no others."""

from __future__ import annotations

from torch import nn

from conftest import bench_module


def bench():
    return bench_module("lucent_side")


def test_drop_new_hooks_removes_only_the_hooks_added_since():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 2, 1)))
    mine = model[0].register_forward_hook(lambda *_: None)  # the user's, kept
    before = {id(m): set(m._forward_hooks) for m in model.modules()}
    for m in model.modules():  # what Lucent's render_vis leaves: one per module
        m.register_forward_hook(lambda *_: None)
    assert bench().drop_new_hooks(model, before) == len(list(model.modules()))
    assert [list(m._forward_hooks) for m in model.modules()] == [[], [mine.id], [], [], []]
    assert bench().drop_new_hooks(model, before) == 0
