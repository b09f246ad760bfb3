"""Which numeric precision a forward pass runs in: bfloat16 autocast on CPUs that have it, float32 islands.

Three decisions live here so that the predictor, the validator, the inference backend and the trainer
make them the same way:

* `cpu_has_native_bf16`: whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). Without
  it PyTorch emulates bf16 kernels, correctly but many times slower than float32, so bf16 is refused.
* `choose_cpu_bf16`: `half=True` on a CPU means bf16 autocast when the CPU has it; otherwise one warning
  per process and float32. Training asks for it explicitly with `amp=bf16`.
* `float32_island` / `run_in_float32`: parts of the model that stay float32 under any autocast (the
  decoder's reference boxes, sampling offsets and attention weights, query selection, class scores).
  Outside autocast they do nothing at all, so float32 and float16 models compute exactly as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import autocast

BF16_AMP = "bf16"  # the `amp` value that asks for bfloat16 autocast in training
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 matmul units

# Warnings already given in this process (refusals are said once, not for every batch or predictor).
_warned: set[str] = set()


def _cpuinfo_flags() -> set[str]:
    """The CPU feature flags the Linux kernel reports; empty where /proc/cpuinfo is not readable."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX512-BF16 or AMX, asked first of PyTorch's own CPU probe, then of /proc/cpuinfo."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    if any(probe is not None and probe() for probe in probes):
        return True
    return any(flag in _cpuinfo_flags() for flag in _BF16_CPU_FLAGS)


def warn_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time `key` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        LOGGER.warning(message)


def choose_cpu_bf16(
    wanted: bool,
    device: torch.device | str,
    what: str = "half=True",
) -> bool:
    """Whether to run bfloat16 autocast: asked for (`wanted`), on a CPU, and the CPU has native bf16.

    A request that cannot be honoured on a CPU warns once and the caller runs float32; on other devices
    the answer is False and the device's own half-precision handling applies.
    """
    if not wanted or torch.device(device).type != "cpu":
        return False
    if cpu_has_native_bf16():
        return True
    warn_once(
        what,
        f"WARNING ⚠️ {what} on CPU runs bfloat16, which needs a CPU with AVX512-BF16 or AMX; this CPU has "
        f"neither (capability {torch.backends.cpu.get_cpu_capability()}), so float32 is used instead",
    )
    return False


def bf16_autocast(enabled: bool) -> contextlib.AbstractContextManager:
    """CPU bfloat16 autocast when `enabled`, else a context that changes nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def to_channels_last(model: nn.Module) -> nn.Module:
    """`model` with its 4-D weights in channels_last layout (values and state_dict keys unchanged).

    Used together with bf16: oneDNN's bf16 convolutions read NHWC without reordering every call
    (about 8 % faster forward at 640 in the measurement of docs/benchmarks.md).
    """
    return model.to(memory_format=torch.channels_last)


def training_autocast(
    cuda_amp: bool,
    amp: bool | str,
    device: torch.device,
) -> contextlib.AbstractContextManager:
    """The autocast context of one training forward.

    cuda_amp: the trainer's decision for float16 AMP on CUDA (with its GradScaler). amp: the `amp`
    setting; `amp=bf16` on a CPU with native bf16 gives bfloat16 autocast (no scaler: bf16 has float32's
    range), elsewhere on a CPU float32 with one warning.
    """
    if device.type == "cpu" and amp == BF16_AMP:
        return bf16_autocast(choose_cpu_bf16(True, device, what="amp=bf16"))
    return autocast(cuda_amp)  # float16 AMP on CUDA, or nothing


def _as_float32(t: torch.Tensor) -> torch.Tensor:
    return t.float()


def _unchanged(t: torch.Tensor) -> torch.Tensor:
    return t


@contextlib.contextmanager
def float32_island(like: torch.Tensor) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Turn autocast off for `like`'s device inside the block and yield the cast to apply to its inputs.

    Under autocast the cast returns float32 tensors, so the block runs in float32 with float32 weights.
    Without autocast it returns its argument unchanged: float32 runs stay bit-identical and float16
    models (CUDA `half=True`) keep their own dtype.
    """
    device_type = like.device.type
    if not torch.is_autocast_enabled(device_type):
        yield _unchanged
        return
    with torch.autocast(device_type, enabled=False):
        yield _as_float32


def float32_like(t: torch.Tensor) -> torch.Tensor:
    """`t` outside autocast; under autocast an empty float32 tensor on t's device.

    For buffers built to match a tensor's dtype and device (the decoder's anchors): under bf16 autocast
    they are built in float32, where a bf16 anchor centre would be off by up to 1/128 of the image.
    """
    if not torch.is_autocast_enabled(t.device.type):
        return t
    return t.new_empty(0, dtype=torch.float32)


def run_in_float32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` in float32 under autocast (a box or class head), as is otherwise."""
    with float32_island(x) as fp32:
        return module(fp32(x))
