"""Torch helpers: devices, seeding, model summaries and FLOPs, layer fusion, EMA and checkpoints."""

from __future__ import annotations

import math
import os
import platform
import random
import time
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ultralytics.utils import LOGGER, NUM_THREADS, colorstr

TORCH_VERSION = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
TORCH_1_13 = TORCH_VERSION >= (1, 13)
TORCH_2_0 = TORCH_VERSION >= (2, 0)
TORCH_2_4 = TORCH_VERSION >= (2, 4)


# ----------------------------------------------------------------------------------------------
# Devices and determinism
# ----------------------------------------------------------------------------------------------
def select_device(device: str | int | torch.device = "", batch: int = 0, newline: bool = False, verbose: bool = True):
    """Turn a user's device string into a torch.device and make only the requested GPUs visible.

    Accepted: '' or None (CUDA 0 when available, else CPU), 'cpu', 'mps', an int or '0', 'cuda:0',
    or a comma list '0,1' for multi-GPU training (returns cuda:0; DDP uses the rest).
    """
    if isinstance(device, torch.device):
        return device
    text = str(device if device is not None else "").lower().strip()
    for junk in ("cuda:", "none", "(", ")", "[", "]", "'", " "):
        text = text.replace(junk, "")
    from ultralytics import __version__

    header = f"Ultralytics {__version__} 🚀 Python-{platform.python_version()} torch-{torch.__version__} "
    if text in {"cpu", "mps"}:
        if text == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("device='mps' was requested but this torch build or machine has no MPS support; use 'cpu'")
        torch.set_num_threads(NUM_THREADS)
        if verbose:
            LOGGER.info(f"{header}{text.upper()}" + ("\n" if newline else ""))
        return torch.device(text)
    if text:
        ids = [x for x in text.split(",") if x]
        if not all(x.isdigit() for x in ids):
            raise ValueError(
                f"Invalid device '{device}': use 'cpu', a CUDA index such as 0 or 'cuda:0', or a list such as '0,1'"
            )
        if not torch.cuda.is_available() or torch.cuda.device_count() < max(int(x) for x in ids) + 1:
            raise ValueError(
                f"Invalid CUDA device '{device}' requested: torch.cuda.is_available()={torch.cuda.is_available()}, "
                f"torch.cuda.device_count()={torch.cuda.device_count() if torch.cuda.is_available() else 0}. "
                "Use device=cpu, or an index below the device count."
            )
        if len(ids) > 1 and batch > 0 and batch % len(ids):
            raise ValueError(f"batch={batch} must be a multiple of the GPU count {len(ids)} for multi-GPU training")
        if verbose:
            names = ", ".join(f"CUDA:{i} ({torch.cuda.get_device_name(int(i))})" for i in ids)
            LOGGER.info(f"{header}{names}" + ("\n" if newline else ""))
        return torch.device(f"cuda:{ids[0]}" if len(ids) == 1 else "cuda:0")
    if torch.cuda.is_available():
        if verbose:
            LOGGER.info(f"{header}CUDA:0 ({torch.cuda.get_device_name(0)})" + ("\n" if newline else ""))
        return torch.device("cuda:0")
    torch.set_num_threads(NUM_THREADS)
    if verbose:
        LOGGER.info(f"{header}CPU" + ("\n" if newline else ""))
    return torch.device("cpu")


def init_seeds(seed: int = 0, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        os.environ["PYTHONHASHSEED"] = str(seed)
    else:
        unset_deterministic()


def unset_deterministic() -> None:
    """Undo init_seeds(deterministic=True)."""
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@contextmanager
def torch_distributed_zero_first(local_rank: int):
    """Let rank 0 do a job (e.g. dataset caching) before the other ranks start it."""
    initialized = dist.is_available() and dist.is_initialized()
    if initialized and local_rank not in {-1, 0}:
        dist.barrier(device_ids=[local_rank])
    yield
    if initialized and local_rank == 0:
        dist.barrier(device_ids=[local_rank])


def smart_inference_mode():
    """Decorator: torch.inference_mode, or no_grad where the caller is already under inference."""

    def decorate(fn):
        if torch.is_inference_mode_enabled():
            return fn
        return torch.inference_mode()(fn)

    return decorate


def autocast(enabled: bool, device: str = "cuda"):
    """Mixed-precision context for the given device type."""
    return torch.amp.autocast(device, enabled=enabled)


def time_sync() -> float:
    """A wall clock that first waits for queued CUDA work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.time()


# ----------------------------------------------------------------------------------------------
# Model helpers
# ----------------------------------------------------------------------------------------------
def is_parallel(model: nn.Module) -> bool:
    return isinstance(model, (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel))


def de_parallel(model: nn.Module) -> nn.Module:
    """The bare model inside a DP/DDP wrapper (or the model itself)."""
    return model.module if is_parallel(model) else model


def copy_attr(a, b, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
    """Copy b's public attributes onto a, limited to `include` when given."""
    for k, v in b.__dict__.items():
        if (include and k not in include) or k.startswith("_") or k in exclude:
            continue
        setattr(a, k, v)


def intersect_dicts(da: dict, db: dict, exclude: Iterable[str] = ()) -> dict:
    """Entries of da whose key is in db with the same shape and that contain none of `exclude`."""
    return {k: v for k, v in da.items() if k in db and all(x not in k for x in exclude) and v.shape == db[k].shape}


def initialize_weights(model: nn.Module) -> None:
    """Ultralytics' BatchNorm settings (eps 1e-3, momentum 0.03) and in-place activations."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
            m.momentum = 0.03
        elif isinstance(m, (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)):
            m.inplace = True


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One Conv2d computing bn(conv(x)) in eval mode.

    The BN scale gamma / sqrt(var + eps) multiplies each output filter, and the BN shift becomes
    the bias: b' = gamma * (b - mean) / sqrt(var + eps) + beta.
    """
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
    ).requires_grad_(False).to(conv.weight.device)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (c2,)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


def get_num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def get_num_gradients(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def get_flops(model: nn.Module, imgsz: int | list[int] = 640) -> float:
    """GFLOPs of one forward pass on a 3 x imgsz x imgsz image, counted by thop (2 x MACs).

    The whole image is profiled rather than a stride-sized crop scaled up, because RT-DETR's
    decoder cost does not scale with image area. Returns 0.0 when thop is not installed.
    """
    try:
        import thop
    except ImportError:
        LOGGER.warning("WARNING ⚠️ GFLOPs not computed: the 'ultralytics-thop' package is not installed")
        return 0.0
    model = de_parallel(model)
    p = next(model.parameters())
    if not isinstance(imgsz, (list, tuple)):
        imgsz = [imgsz, imgsz]
    im = torch.zeros((1, p.shape[1] if p.dim() > 1 else 3, *imgsz), device=p.device)
    clone = deepcopy(model).float().eval()
    with torch.no_grad():
        macs = thop.profile(clone, inputs=[im], verbose=False)[0]
    return macs / 1e9 * 2


def model_info(model: nn.Module, detailed: bool = False, verbose: bool = True, imgsz: int | list[int] = 640):
    """Log and return (layers, parameters, gradients, GFLOPs) in Ultralytics' summary format.

    layers counts every module in model.modules(), as upstream does.
    """
    if not verbose:
        return None
    n_p = get_num_params(model)
    n_g = get_num_gradients(model)
    n_l = len(list(model.modules()))
    if detailed:
        LOGGER.info(f"{'layer':>5} {'name':>40} {'gradient':>9} {'parameters':>12} {'shape':>20} {'mu':>10} {'sigma':>10}")
        for i, (name, p) in enumerate(model.named_parameters()):
            name = name.replace("module_list.", "")
            LOGGER.info(
                f"{i:5g} {name:>40} {str(p.requires_grad):>9} {p.numel():12g} {str(list(p.shape)):>20} "
                f"{p.mean():10.3g} {p.std() if p.numel() > 1 else 0.0:10.3g} {str(p.dtype):>15}"
            )
    flops = get_flops(model, imgsz)
    fused = " (fused)" if getattr(model, "is_fused", lambda: False)() else ""
    fs = f", {flops:.1f} GFLOPs" if flops else ""
    yaml_file = getattr(model, "yaml_file", "") or getattr(model, "yaml", {}).get("yaml_file", "")
    stem = Path(yaml_file).stem.replace("yolo", "YOLO") or "Model"
    LOGGER.info(f"{stem} summary{fused}: {n_l:,} layers, {n_p:,} parameters, {n_g:,} gradients{fs}")
    return n_l, n_p, n_g, flops


# ----------------------------------------------------------------------------------------------
# Training helpers
# ----------------------------------------------------------------------------------------------
def one_cycle(y1: float = 0.0, y2: float = 1.0, steps: int = 100):
    """Cosine ramp from y1 to y2 over `steps`, as a function of the step index."""
    return lambda x: max((1 - math.cos(x * math.pi / steps)) / 2, 0) * (y2 - y1) + y1


class ModelEMA:
    """Exponential moving average of a model's weights, with a warm-up on the decay.

    decay(updates) = decay * (1 - exp(-updates / tau)): early averages follow the model closely,
    later ones change slowly. Floating-point buffers (BN statistics) are averaged too.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: int = 2000, updates: int = 0):
        self.ema = deepcopy(de_parallel(model)).eval()
        self.updates = updates
        self.decay = lambda x: decay * (1 - math.exp(-x / tau))
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.enabled = True

    def update(self, model: nn.Module) -> None:
        if not self.enabled:
            return
        self.updates += 1
        d = self.decay(self.updates)
        msd = de_parallel(model).state_dict()
        with torch.no_grad():
            keys = [k for k, v in self.ema.state_dict().items() if v.dtype.is_floating_point]
            ema_state = self.ema.state_dict()
            averaged = [ema_state[k] for k in keys]
            # ema = d * ema + (1 - d) * model, as two multi-tensor ops instead of a loop over ~1000 tensors
            torch._foreach_mul_(averaged, d)
            torch._foreach_add_(averaged, [msd[k].detach() for k in keys], alpha=1 - d)

    def update_attr(self, model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = ("process_group", "reducer")) -> None:
        if self.enabled:
            copy_attr(self.ema, model, include, exclude)


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs."""

    def __init__(self, patience: int = 50):
        self.best_fitness = 0.0
        self.best_epoch = 0
        self.patience = patience or float("inf")
        self.possible_stop = False

    def __call__(self, epoch: int, fitness: float | None) -> bool:
        if fitness is None:
            return False
        if fitness >= self.best_fitness:
            self.best_epoch = epoch
            self.best_fitness = fitness
        delta = epoch - self.best_epoch
        self.possible_stop = delta >= (self.patience - 1)
        stop = delta >= self.patience
        if stop:
            LOGGER.info(
                f"{colorstr('EarlyStopping: ')}Training stopped early as no improvement observed in last {self.patience} "
                f"epochs. Best results observed at epoch {self.best_epoch}, best model saved as best.pt.\n"
                f"To update EarlyStopping(patience={self.patience}) pass a new patience value, "
                f"i.e. `patience=300` or use `patience=0` to disable EarlyStopping."
            )
        return stop


# Checkpoint helpers live in ultralytics.nn.checkpoints; imported here too, where upstream has them.
from ultralytics.nn.checkpoints import (  # noqa: E402, F401
    convert_optimizer_state_dict_to_fp16,
    strip_optimizer,
)
