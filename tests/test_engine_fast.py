"""The ``accel`` switch: "exact" keeps renders as they were, "fast" runs what the device has."""

from __future__ import annotations

import pytest
import torch

import midnite
from midnite import objectives as obj
from midnite.engine import RenderConfig
from midnite.engine.accel import ACCELS, AccelPlan, accel_plan
from midnite.engine.passes import Renderer

from conftest import tiny_cnn

CPU = torch.device("cpu")


def _render(accel: object = "default", **kw):
    settings = {} if accel == "default" else {"accel": accel}
    return midnite.render(
        tiny_cnn(), obj.channel("2", 1), size=32, steps=4, progress=False, **settings, **kw
    )


def test_plan_exact_turns_nothing_on():
    assert accel_plan("exact", CPU) == AccelPlan("exact")
    assert ACCELS == ("exact", "fast")


def test_plan_fast_on_cpu_skips_cuda_graphs_with_a_reason(monkeypatch):
    plan = accel_plan("fast", CPU)
    assert plan.compile_mode is None and "CUDA" in plan.skipped["compile"]
    assert plan.channels_last is None  # the engine's own choice on the CPU (channels-last)
    monkeypatch.setattr("midnite.engine.accel._cpu_bf16", lambda: True)
    assert accel_plan("fast", CPU).autocast is torch.bfloat16
    monkeypatch.setattr("midnite.engine.accel._cpu_bf16", lambda: False)
    plan = accel_plan("fast", CPU)
    assert plan.autocast is None and "bf16" in plan.skipped["autocast"]


def test_plan_fast_on_other_devices_skips_autocast():
    plan = accel_plan("fast", torch.device("meta"))
    assert plan.autocast is None and set(plan.skipped) == {"compile", "autocast"}


@pytest.mark.parametrize("bad", ["gpu", "", None, 1])
def test_bad_accel_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match=r"accel must be one of \('exact', 'fast'\)"):
        accel_plan(bad, CPU)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="accel must be one of"):
        _render(bad)


def test_plan_wants_a_device():
    with pytest.raises(TypeError, match=r"device must be a torch\.device, got str"):
        accel_plan("fast", "cpu")  # type: ignore[arg-type]


def test_exact_is_the_default_and_leaves_settings_and_bytes_as_they_were():
    plain, exact = _render(), _render("exact")
    assert torch.equal(plain.images, exact.images)
    assert "accel" not in plain.settings  # records and catalogue keys keep their bytes
    config = RenderConfig.resolve(tiny_cnn(), obj.channel("2", 1), accel="fast")
    assert config.accel == "fast" and config.to_json()["accel"] == "fast"
    with pytest.raises(ValueError, match="accel must be one of"):
        config.replace(accel="quick")


@pytest.mark.parametrize("bf16", [True, False])
def test_fast_on_cpu_runs_repeatably_and_close_to_exact(monkeypatch, bf16):
    monkeypatch.setattr("midnite.engine.accel._cpu_bf16", lambda: bf16)
    exact, a, b = _render("exact"), _render("fast"), _render("fast")
    assert torch.equal(a.images, b.images)  # one seed, one result, also when fast
    assert a.settings["accel"] == "fast"
    assert a.history.dtype == torch.float32 and torch.isfinite(a.history).all()
    if bf16:  # the model ran in bf16: the same objective to bf16 rounding, not equal
        assert not torch.equal(a.images, exact.images)
        assert torch.allclose(a.start, exact.start, rtol=0.02, atol=1e-3)
    else:  # nothing to turn on: the exact render
        assert torch.equal(a.images, exact.images)


def test_autocast_renderer_reads_float32_activations():
    net = tiny_cnn()
    x = torch.rand(2, 3, 16, 16)
    with Renderer(net, obj.channel("2", 1), autocast=torch.bfloat16, fold_bn=False) as r:
        acts = r.activations(x)
        values = r.validate(x)
    assert acts["2"].dtype == torch.float32 and values.dtype == torch.float32
    with Renderer(net, obj.channel("2", 1), fold_bn=False) as r:
        exact = r.validate(x)
    assert torch.allclose(values, exact, atol=0.05) and not torch.equal(values, exact)


@pytest.mark.slow  # torch.compile on the CPU: tens of seconds of compilation
def test_compiled_model_gives_the_eager_values_and_is_restored():
    net = tiny_cnn()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    with Renderer(net, obj.channel("2", 1), fold_bn=False) as r:
        eager, _ = r.loss(x)
    with Renderer(net, obj.channel("2", 1), fold_bn=False, compile_mode="default") as r:
        compiled, _ = r.loss(x)
        compiled.backward()
    assert torch.allclose(compiled, eager, atol=1e-5)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not any(m._forward_hooks for m in net.modules())  # hooks gone


@pytest.mark.gpu
def test_fast_on_cuda_uses_autocast_graphs_and_stays_close_to_exact():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    plan = accel_plan("fast", torch.device("cuda"))
    assert plan.compile_mode == "reduce-overhead" and plan.channels_last and not plan.skipped
    exact = _render("exact", device="cuda", batch=4)
    fast = _render("fast", device="cuda", batch=4)
    assert fast.images.shape == exact.images.shape and torch.isfinite(fast.history).all()
    assert (fast.images - exact.images).abs().max() < 0.1


def _count_passes(model):
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))  # on the top module only
    return calls


def test_fold_pairs_are_found_once_per_model_and_kind_of_input():
    from midnite.engine._fold import conv_bn_pairs
    from test_fold import Net

    model = Net().eval()
    calls = _count_passes(model)
    x = torch.rand(2, 3, 8, 8)
    first = conv_bn_pairs(model, x)
    probes = len(calls)
    assert probes == 2 and len(first) == 3  # the probe and the check
    assert conv_bn_pairs(model, torch.rand(5, 3, 8, 8)) == first  # any batch: no new pass
    assert len(calls) == probes
    assert conv_bn_pairs(model, x, cache=False) == first and len(calls) == probes + 2
    conv_bn_pairs(model, torch.rand(2, 3, 16, 16))  # another size: probed again
    assert len(calls) == probes + 4


def test_fold_cache_sees_hooks_modes_and_kept_layers():
    from midnite.engine._fold import conv_bn_pairs
    from test_fold import Net

    model = Net().eval()
    x = torch.rand(2, 3, 8, 8)
    assert len(conv_bn_pairs(model, x)) == 3
    assert len(conv_bn_pairs(model, x, keep={"a"})) == 2  # the objective reads conv a
    handle = model.stem.register_forward_hook(lambda m, a, out: None)
    assert len(conv_bn_pairs(model, x)) == 2  # a hooked conv is left alone
    handle.remove()
    assert len(conv_bn_pairs(model, x)) == 3
    model.train()
    assert conv_bn_pairs(model, x) == []  # batch statistics: nothing folds


def test_a_second_render_of_a_model_gives_the_same_bytes_as_a_fresh_one():
    from midnite.engine import _fold
    from test_fold import Net

    model = Net().eval()
    first = midnite.render(model, obj.channel("c", 1), size=16, steps=3, progress=False)
    again = midnite.render(model, obj.channel("c", 1), size=16, steps=3, progress=False)
    _fold._FOUND.clear()
    fresh = midnite.render(model, obj.channel("c", 1), size=16, steps=3, progress=False)
    assert torch.equal(first.images, again.images) and torch.equal(again.images, fresh.images)


def test_gpu_benchmark_refuses_without_cuda(capsys):
    import sys
    from pathlib import Path

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, bench)
    try:
        import gpu
    finally:
        sys.path.remove(bench)
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the gpu-marked test runs the benchmark")
    assert gpu.main(["--device", "cpu"]) == 2
    assert "needs a CUDA device, got 'cpu'" in capsys.readouterr().err


@pytest.mark.gpu
def test_gpu_benchmark_runs_on_cuda(tmp_path):
    import json
    import sys
    from pathlib import Path

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import gpu

    out = tmp_path / "gpu.json"
    assert gpu.main(["--rounds", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["accel"] for r in rows] == ["exact", "fast"]
    assert all(r["batching gain"] > 0 for r in rows)
