"""Automatic training batch size (`batch=-1`, or a fraction such as `batch=0.7`).

The largest batch that fits is found by measuring rather than guessing: one forward and backward
pass at a few batch sizes gives the peak CUDA memory of each, a straight line through those points
says how memory grows per image, and the batch size is where that line meets the wanted share of
the device's memory (60 % for batch=-1, the fraction itself for 0 < batch < 1). On a CPU or Apple
GPU there is nothing to measure and the default batch of 16 is used, with a warning.
"""

from __future__ import annotations

from copy import deepcopy

import numpy as np
import torch

from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import autocast

PREFIX = colorstr("AutoBatch: ")
DEFAULT_FRACTION = 0.60  # share of CUDA memory batch=-1 aims for
_GB = 1 << 30
_SAFE_RANGE = (1, 1024)


def check_train_batch_size(
    model: torch.nn.Module,
    imgsz: int = 640,
    amp: bool = True,
    batch: float = -1,
    max_num_obj: int = 1,
) -> int:
    """The training batch size for batch=-1 (60 % of CUDA memory) or 0 < batch < 1 (that share of it).

    Measures a copy of `model` in training mode, under autocast when `amp`; the model itself is untouched.
    """
    fraction = batch if 0.0 < batch < 1.0 else DEFAULT_FRACTION
    if RANK != -1:  # each DDP process would measure and pick on its own
        LOGGER.warning(
            f"{PREFIX}WARNING ⚠️ batch={batch} (AutoBatch) is not supported in multi-GPU training; "
            f"using the default batch-size {DEFAULT_CFG.batch}"
        )
        return DEFAULT_CFG.batch
    device_type = next(model.parameters()).device.type
    with autocast(enabled=amp and device_type == "cuda"):
        return autobatch(deepcopy(model).train(), imgsz, fraction=fraction, max_num_obj=max_num_obj)


def autobatch(
    model: torch.nn.Module,
    imgsz: int = 640,
    fraction: float = DEFAULT_FRACTION,
    batch_size: int = DEFAULT_CFG.batch,
    max_num_obj: int = 1,
) -> int:
    """The batch size whose measured training-step memory fills `fraction` of the model's CUDA device.

    Returns `batch_size` (with a warning) off CUDA, when the measurement fails or when the answer
    falls outside 1-1024. `max_num_obj` is accepted for upstream compatibility (RT-DETR's memory does
    not depend on the number of objects at this stage).
    """
    imgsz = imgsz if isinstance(imgsz, int) else max(imgsz)  # a square training size
    LOGGER.info(f"{PREFIX}Computing optimal batch size for imgsz={imgsz} at {fraction * 100}% CUDA memory utilization.")
    device = next(model.parameters()).device
    if device.type != "cuda":
        LOGGER.warning(f"{PREFIX} ⚠️ intended for CUDA devices, using default batch-size {batch_size}")
        return batch_size
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # kernel auto-tuning would add its own workspace to each measurement
    try:
        return _fit_batch(model, imgsz, fraction, batch_size, device)
    except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:
        LOGGER.warning(f"{PREFIX}WARNING ⚠️ error detected: {err}, using default batch-size {batch_size}.")
        return batch_size
    finally:
        torch.backends.cudnn.benchmark = benchmark
        torch.cuda.empty_cache()


def _step_memory(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> float | None:
    """Peak GB a forward and backward pass on `images` adds on top of what is allocated; None when out of memory."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        out = model(images)
        loss = sum(t.float().sum() for t in _tensors(out))
        loss.backward()
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / _GB


def _tensors(out) -> list[torch.Tensor]:
    """Every floating tensor in a (nested) model output, for a loss that reaches all of them."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def _fit_batch(model: torch.nn.Module, imgsz: int, fraction: float, default: int, device: torch.device) -> int:
    """Measure a few batch sizes, fit memory = slope * batch + intercept and solve it for the budget."""
    props = torch.cuda.get_device_properties(device)
    total = props.total_memory / _GB
    reserved, allocated = torch.cuda.memory_reserved(device) / _GB, torch.cuda.memory_allocated(device) / _GB
    LOGGER.info(
        f"{PREFIX}CUDA:{device.index or 0} ({props.name}) {total:.2f}G total, {reserved:.2f}G reserved, "
        f"{allocated:.2f}G allocated, {total - reserved - allocated:.2f}G free"
    )
    sizes = [1, 2, 4, 8, 16] if total < 16 else [1, 2, 4, 8, 16, 32, 64]
    measured: list[tuple[int, float]] = []
    for b in sizes:
        gb = _step_memory(model, torch.empty(b, 3, imgsz, imgsz, device=device).uniform_(), device)
        if gb is None:
            break  # larger batches would not fit either
        measured.append((b, gb))
    if len(measured) < 2:
        raise ValueError(f"only {len(measured)} batch size(s) could be measured")
    slope, intercept = np.polyfit(*zip(*measured), deg=1)
    budget = total * fraction - allocated  # what the batch may add on top of the model and optimizer
    b = int((budget - intercept) / slope)
    if len(measured) < len(sizes):  # a size ran out of memory: stay below it
        b = min(b, measured[-1][0])
    if not _SAFE_RANGE[0] <= b <= _SAFE_RANGE[1]:
        LOGGER.warning(f"{PREFIX}WARNING ⚠️ batch={b} outside safe range, using default batch-size {default}.")
        return default
    used = (np.polyval((slope, intercept), b) + allocated) / total
    LOGGER.info(f"{PREFIX}Using batch-size {b} for CUDA:{device.index or 0} {total * used:.2f}G/{total:.2f}G ({used * 100:.0f}%) ✅")
    return b
