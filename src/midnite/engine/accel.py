"""``accel``: one switch between exact renders and fast ones (``render(..., accel="fast")``).

``"exact"`` (the default): float32, eager, bit-stable (one seed gives the same bytes run to run).
``"fast"``: bf16 autocast, channels-last and ``torch.compile(mode="reduce-overhead")`` (CUDA
graphs) where the device has them; what a device lacks is skipped, with the reason in
``accel_plan(...).skipped``. Fast images differ from exact ones in the low bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from midnite.engine.checks import check_choice

__all__ = ["ACCELS", "AccelPlan", "accel_plan"]

ACCELS = ("exact", "fast")


@dataclass(frozen=True)
class AccelPlan:
    """What ``accel`` turns on for a device.

    ``autocast``: the dtype of autocast around the model (None: float32); ``channels_last``:
    the model's layout (None: the engine's choice, channels-last for conv nets on the CPU);
    ``compile_mode``: the mode of ``torch.compile`` for the model's forward (None: eager);
    ``skipped``: ``{feature: reason}`` for what ``"fast"`` could not turn on here.
    """

    accel: str
    autocast: torch.dtype | None = None
    channels_last: bool | None = None
    compile_mode: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _cpu_bf16() -> bool:
    """Whether this CPU has AMX tiles (bf16 matrix units), as torch reports it.

    AVX512-BF16 alone is not enough: on such a CPU (AMD EPYC, torch 2.13) a bf16-autocast
    step of Lite0 measured 1.33x a float32 one (``benchmarks/RESULTS.md``).
    """
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def accel_plan(accel: str, device: torch.device) -> AccelPlan:
    """The plan of ``accel`` (``"exact"`` or ``"fast"``) on ``device``; see the module doc."""
    accel = check_choice("accel", accel, ACCELS)
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device, got {type(device).__name__}")
    if accel == "exact":
        return AccelPlan(accel)
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return AccelPlan(
            accel,
            autocast=torch.bfloat16 if bf16 else torch.float16,
            channels_last=True,
            compile_mode="reduce-overhead",
        )
    skipped = {
        "compile": "CUDA graphs (torch.compile mode='reduce-overhead') need a CUDA device; "
        "torch.compile on the CPU measured slower (and minutes to compile)"
    }
    if device.type != "cpu":
        skipped["autocast"] = f"bf16 autocast is set up for cuda and cpu only, not {device.type}"
        return AccelPlan(accel, skipped=skipped)
    if not _cpu_bf16():
        skipped["autocast"] = "this CPU has no AMX: bf16 autocast measured slower than float32"
        return AccelPlan(accel, skipped=skipped)
    return AccelPlan(accel, autocast=torch.bfloat16, skipped=skipped)
