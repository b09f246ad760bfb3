"""Torch helpers: devices, seeding, model summaries and FLOPs, layer fusion, EMA and early stopping.

Checkpoint reading and writing lives in `ultralytics.nn.checkpoints`; `strip_optimizer` and
`convert_optimizer_state_dict_to_fp16` are re-exported at the bottom, where upstream scripts look.
"""

from __future__ import annotations

import functools
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

# Characters users put around device strings ("cuda:0", "[0, 1]", "'cpu'") that carry no meaning.
_DEVICE_NOISE = ("cuda:", "none", "(", ")", "[", "]", "'", " ")


# ----------------------------------------------------------------------------------------------
# Devices and determinism
# ----------------------------------------------------------------------------------------------
def _device_text(device) -> str:
    text = "" if device is None else str(device)
    text = text.lower().strip()
    for noise in _DEVICE_NOISE:
        text = text.replace(noise, "")
    return text


def _announce(description: str, newline: bool, verbose: bool) -> None:
    """Log the one-line environment banner that ends with the chosen device."""
    if not verbose:
        return
    from ultralytics import __version__

    banner = f"Ultralytics {__version__} 🚀 Python-{platform.python_version()} torch-{torch.__version__} "
    LOGGER.info(banner + description + ("\n" if newline else ""))


def _host_device(kind: str, newline: bool, verbose: bool) -> torch.device:
    """CPU or MPS. Work on the host uses NUM_THREADS threads (one core is left for data loading)."""
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("device='mps' was requested but this torch build or machine has no MPS support; use 'cpu'")
    torch.set_num_threads(NUM_THREADS)
    _announce(kind.upper(), newline, verbose)
    return torch.device(kind)


def _cuda_ids(text: str, device, batch: int) -> list[str]:
    """The requested CUDA indices, after checking that they exist and suit the batch size."""
    ids = [x for x in text.split(",") if x]
    if not all(x.isdigit() for x in ids):
        raise ValueError(
            f"Invalid device '{device}': use 'cpu', a CUDA index such as 0 or 'cuda:0', or a list such as '0,1'"
        )
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if count <= max(int(x) for x in ids):
        raise ValueError(
            f"Invalid CUDA device '{device}' requested: torch.cuda.is_available()={available}, "
            f"torch.cuda.device_count()={count}. Use device=cpu, or an index below the device count."
        )
    if len(ids) > 1 and batch > 0 and batch % len(ids):
        raise ValueError(f"batch={batch} must be a multiple of the GPU count {len(ids)} for multi-GPU training")
    return ids


def select_device(device: str | int | torch.device = "", batch: int = 0, newline: bool = False, verbose: bool = True):
    """Turn a user's device string into a torch.device.

    Accepted: '' or None (CUDA 0 when available, else CPU), 'cpu', 'mps', an int or '0', 'cuda:0',
    or a comma list '0,1' for multi-GPU training (returns cuda:0; DDP uses the rest). Choosing the
    CPU or MPS sets torch's thread count to NUM_THREADS; choosing CUDA leaves it alone.
    """
    if isinstance(device, torch.device):
        return device
    text = _device_text(device)
    if text in {"cpu", "mps"}:
        return _host_device(text, newline, verbose)
    if not text and not torch.cuda.is_available():
        return _host_device("cpu", newline, verbose)
    ids = _cuda_ids(text, device, batch) if text else ["0"]
    gpus = ", ".join(f"CUDA:{i} ({torch.cuda.get_device_name(int(i))})" for i in ids) if verbose else ""
    _announce(gpus, newline, verbose)
    return torch.device(f"cuda:{ids[0]}" if len(ids) == 1 else "cuda:0")  # DDP places the other ranks


def _deterministic_kernels(enabled: bool) -> None:
    torch.use_deterministic_algorithms(enabled, warn_only=enabled)
    torch.backends.cudnn.deterministic = enabled


def init_seeds(seed: int = 0, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (in that order); optionally ask torch for deterministic kernels."""
    for seeder in (random.seed, np.random.seed, torch.manual_seed, torch.cuda.manual_seed_all):
        seeder(seed)
    if not deterministic:
        unset_deterministic()
        return
    _deterministic_kernels(True)
    # cuBLAS needs a fixed workspace to be reproducible; hashing is pinned for any child process.
    os.environ.update({"CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONHASHSEED": str(seed)})


def rng_states() -> dict:
    """The python, numpy and torch (CPU and every initialised CUDA device) random states, as tensors
    and plain numbers, so that a checkpoint holding them loads under the restricted unpickler."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }  # fmt: skip


def set_rng_states(states: dict) -> None:
    """Put back what `rng_states` returned; CUDA states only when the same number of devices is present."""
    py, npy = states["python"], states["numpy"]
    random.setstate((py["version"], tuple(py["words"].tolist()), py["gauss"]))
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def unset_deterministic() -> None:
    """Undo init_seeds(deterministic=True)."""
    _deterministic_kernels(False)
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    """Wait for every rank. nccl is told this rank's GPU (else it guesses one per global rank); gloo takes none."""
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextmanager
def torch_distributed_zero_first(local_rank: int):
    """Let local rank 0 of each node do a job (e.g. dataset caching) before the node's other ranks start it.

    Every rank passes exactly one barrier: the others before the job, local rank 0 after it.
    """
    waits_for_leader = _distributed() and local_rank not in {-1, 0}
    if waits_for_leader:
        _barrier()  # released when local rank 0 reaches its barrier below
    yield
    if _distributed() and local_rank == 0:
        _barrier()


def smart_inference_mode():
    """Decorator: torch.inference_mode, unless the caller already runs under inference mode."""

    def decorate(fn):
        return fn if torch.is_inference_mode_enabled() else torch.inference_mode()(fn)

    return decorate


def autocast(enabled: bool, device: str = "cuda"):
    """Mixed-precision context for the given device type."""
    return torch.autocast(device_type=device, enabled=enabled)


def time_sync() -> float:
    """A wall clock reading taken after queued CUDA work has finished, so timings include it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.time()


# ----------------------------------------------------------------------------------------------
# Model helpers
# ----------------------------------------------------------------------------------------------
_PARALLEL_WRAPPERS = (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel)


def is_parallel(model: nn.Module) -> bool:
    """True for a model wrapped by DataParallel or DistributedDataParallel."""
    return isinstance(model, _PARALLEL_WRAPPERS)


def de_parallel(model: nn.Module) -> nn.Module:
    """The bare model inside a DP/DDP wrapper (or the model itself)."""
    if is_parallel(model):
        return model.module
    return model


def copy_attr(a, b, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
    """Copy b's public attributes onto a, limited to `include` when given."""
    wanted = {k: v for k, v in vars(b).items() if not k.startswith("_") and k not in exclude}
    for name, value in wanted.items():
        if not include or name in include:
            setattr(a, name, value)


def intersect_dicts(da: dict, db: dict, exclude: Iterable[str] = ()) -> dict:
    """Entries of da whose key is in db with the same shape and that contain none of `exclude`."""
    shared = {}
    for key, tensor in da.items():
        excluded = any(part in key for part in exclude)
        if key in db and not excluded and tensor.shape == db[key].shape:
            shared[key] = tensor
    return shared


# Settings applied to every model after construction (upstream's values; checkpoints carry them).
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.03
_INPLACE_ACTIVATIONS = (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)


def initialize_weights(model: nn.Module) -> None:
    """BatchNorm eps/momentum as upstream sets them, and in-place activations; no random draws."""
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.eps, layer.momentum = _BN_EPS, _BN_MOMENTUM
        elif isinstance(layer, _INPLACE_ACTIVATIONS):
            layer.inplace = True


def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One Conv2d computing bn(conv(x)) in eval mode.

    The BN scale gamma / sqrt(var + eps) multiplies each output filter, and the BN shift becomes
    the bias: b' = gamma * (b - mean) / sqrt(var + eps) + beta.
    """
    geometry = (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, *geometry, bias=True)
    fused = fused.requires_grad_(False).to(conv.weight.device)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (c2,)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv_bias = torch.zeros_like(bn.running_mean) if conv.bias is None else conv.bias
    fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


def get_num_params(model: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in model.parameters())


def get_num_gradients(model: nn.Module) -> int:
    """Number of scalar parameters that train (requires_grad)."""
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
    bare = de_parallel(model)
    first = next(bare.parameters())
    channels = first.shape[1] if first.dim() > 1 else 3
    h, w = imgsz if isinstance(imgsz, (list, tuple)) else (imgsz, imgsz)
    image = torch.zeros((1, channels, h, w), device=first.device)
    with torch.no_grad():
        macs, _ = thop.profile(deepcopy(bare).float().eval(), inputs=[image], verbose=False)
    return macs / 1e9 * 2


def get_flops_with_torch_profiler(model: nn.Module, imgsz: int | list[int] = 640) -> float:
    """GFLOPs of one forward pass on a 3 x imgsz x imgsz image, as torch.profiler counts them.

    The profiler knows the FLOPs of matmuls and convolutions only, so the figure can differ from
    get_flops (thop); it needs no extra package. Returns 0.0 when the profiler cannot count.
    """
    bare = deepcopy(de_parallel(model)).float().eval()
    first = next(bare.parameters())
    h, w = imgsz if isinstance(imgsz, (list, tuple)) else (imgsz, imgsz)
    image = torch.zeros((1, first.shape[1] if first.dim() > 1 else 3, h, w), device=first.device)
    try:
        with torch.no_grad(), torch.profiler.profile(with_flops=True) as prof:
            bare(image)
    except RuntimeError as err:
        LOGGER.warning(f"WARNING ⚠️ torch.profiler could not count FLOPs: {err}")
        return 0.0
    return sum(event.flops for event in prof.key_averages()) / 1e9


_PROFILE_HEADER = (
    f"{'Params':>12s}{'GFLOPs':>12s}{'GPU_mem (GB)':>14s}{'forward (ms)':>14s}{'backward (ms)':>14s}"
    f"{'input':>24s}{'output':>24s}"
)


def _shape_text(t) -> str:
    if isinstance(t, torch.Tensor):
        return str(tuple(t.shape))
    return "list" if isinstance(t, (list, tuple)) else "-"


def _timed_passes(op, x: torch.Tensor, n: int) -> tuple[float, float, object]:
    """Mean forward and backward milliseconds of `op(x)` over n runs; backward is nan when it cannot run."""
    forward = backward = 0.0
    y = None
    for _ in range(n):
        t0 = time_sync()
        y = op(x)
        t1 = time_sync()
        try:
            (sum(yi.sum() for yi in y) if isinstance(y, (list, tuple)) else y).sum().backward()
            backward += (time_sync() - t1) * 1e3 / n
        except RuntimeError:  # no graph: inference-only op or input without grad
            backward = float("nan")
        forward += (t1 - t0) * 1e3 / n
    return forward, backward, y


def _gflops_of(op, x: torch.Tensor) -> float:
    try:
        import thop
    except ImportError:
        return 0.0
    return thop.profile(deepcopy(op), inputs=[x], verbose=False)[0] / 1e9 * 2


def profile(input, ops, n: int = 10, device=None, max_num_obj: int = 0) -> list[list]:
    """Time, count and measure ops (modules or callables) on inputs and log one table row per pair.

    `input` and `ops` may each be one item or a list; every op runs on every input. Returns one row
    per pair: [params, GFLOPs, GPU memory (GB), forward ms, backward ms, input shape, output shape]
    (a row of None where the op failed). `max_num_obj` is accepted for upstream compatibility.

        profile(torch.randn(8, 64, 40, 40), [nn.Conv2d(64, 64, 3, 1, 1), FocalModulation(64)], n=5)
    """
    device = device or select_device(verbose=False)
    inputs = input if isinstance(input, list) else [input]
    modules = ops if isinstance(ops, list) else [ops]
    LOGGER.info(_PROFILE_HEADER)
    rows = []
    for x in inputs:
        x = x.to(device).detach().requires_grad_(x.is_floating_point())  # the caller's tensor stays as it was
        for op in modules:
            rows.append(_profile_one(op.to(device) if hasattr(op, "to") else op, x, n, device))
    return rows


def _profile_one(op, x: torch.Tensor, n: int, device) -> list:
    """One row of `profile`: the op's numbers on x, logged."""
    params = sum(p.numel() for p in op.parameters()) if isinstance(op, nn.Module) else 0
    try:
        gflops = _gflops_of(op, x) if isinstance(op, nn.Module) else 0.0
        forward, backward, y = _timed_passes(op, x, n)
    except (RuntimeError, TypeError, ValueError) as err:
        LOGGER.info(f"profile: {type(op).__name__} failed on input {_shape_text(x)}: {err}")
        return [None] * 7
    on_cuda = torch.cuda.is_available() and torch.device(device).type == "cuda"
    memory = torch.cuda.memory_reserved() / 1e9 if on_cuda else 0.0
    s_in, s_out = _shape_text(x), _shape_text(y)
    LOGGER.info(f"{params:12}{gflops:12.4g}{memory:>14.3f}{forward:14.4g}{backward:14.4g}{s_in:>24s}{s_out:>24s}")
    return [params, gflops, memory, forward, backward, s_in, s_out]


def _log_parameter_table(model: nn.Module) -> None:
    """One line per parameter tensor: name, trainable, size, shape, mean, std, dtype."""
    LOGGER.info(f"{'layer':>5} {'name':>40} {'gradient':>9} {'parameters':>12} {'shape':>20} {'mu':>10} {'sigma':>10}")
    for index, (name, p) in enumerate(model.named_parameters()):
        sigma = p.std() if p.numel() > 1 else 0.0
        LOGGER.info(
            f"{index:5g} {name.replace('module_list.', ''):>40} {p.requires_grad!s:>9} {p.numel():12g} "
            f"{list(p.shape)!s:>20} {p.mean():10.3g} {sigma:10.3g} {p.dtype!s:>15}"
        )


def _summary_title(model: nn.Module) -> str:
    """'<yaml stem> summary', with ' (fused)' once BatchNorm has been folded away."""
    source = getattr(model, "yaml_file", "") or getattr(model, "yaml", {}).get("yaml_file", "")
    stem = Path(source).stem.replace("yolo", "YOLO") or "Model"
    fused = getattr(model, "is_fused", None)
    return f"{stem} summary (fused)" if fused is not None and fused() else f"{stem} summary"


def model_info(model: nn.Module, detailed: bool = False, verbose: bool = True, imgsz: int | list[int] = 640):
    """Log and return (layers, parameters, gradients, GFLOPs) in Ultralytics' summary format.

    layers counts every module in model.modules(), as upstream does. Returns None when not verbose.
    """
    if not verbose:
        return None
    layers = sum(1 for _ in model.modules())
    params, grads = get_num_params(model), get_num_gradients(model)
    if detailed:
        _log_parameter_table(model)
    flops = get_flops(model, imgsz)
    gflops = f", {flops:.1f} GFLOPs" if flops else ""
    LOGGER.info(f"{_summary_title(model)}: {layers:,} layers, {params:,} parameters, {grads:,} gradients{gflops}")
    return layers, params, grads, flops


# ----------------------------------------------------------------------------------------------
# Training helpers
# ----------------------------------------------------------------------------------------------
def one_cycle(y1: float = 0.0, y2: float = 1.0, steps: int = 100):
    """Cosine ramp from y1 to y2 over `steps`, as a function of the step index."""

    def ramp(step: float) -> float:
        progress = (1 - math.cos(step * math.pi / steps)) / 2
        return max(progress, 0) * (y2 - y1) + y1

    return ramp


def _warmed_decay(updates: int, decay: float, tau: float) -> float:
    """EMA decay after `updates` steps: near 0 at first (follow the model), tending to `decay`."""
    return decay * (1 - math.exp(-updates / tau))


class ModelEMA:
    """Exponential moving average of a model's weights, with a warm-up on the decay.

    decay(updates) = decay * (1 - exp(-updates / tau)): early averages follow the model closely,
    later ones change slowly. Floating-point buffers (BN statistics) are averaged too.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: int = 2000, updates: int = 0):
        self.ema = deepcopy(de_parallel(model)).eval()
        self.updates = updates
        self.decay = functools.partial(_warmed_decay, decay=decay, tau=tau)
        self.ema.requires_grad_(False)
        self.enabled = True

    def update(self, model: nn.Module) -> None:
        """ema = d * ema + (1 - d) * model for every float tensor of the state_dict."""
        if not self.enabled:
            return
        self.updates += 1
        d = self.decay(self.updates)
        source = de_parallel(model).state_dict()
        with torch.no_grad():
            target = {k: v for k, v in self.ema.state_dict().items() if v.dtype.is_floating_point}
            averaged = list(target.values())
            # two multi-tensor ops instead of a Python loop over ~1000 tensors
            torch._foreach_mul_(averaged, d)
            torch._foreach_add_(averaged, [source[k].detach() for k in target], alpha=1 - d)

    def update_attr(self, model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = ("process_group", "reducer")) -> None:
        """Mirror the model's public attributes (names, args, ...) on the averaged copy."""
        if self.enabled:
            copy_attr(self.ema, model, include, exclude)


class EarlyStopping:
    """Stop when fitness has not improved for `patience` epochs (patience 0 or None: never)."""

    def __init__(self, patience: int = 50):
        self.best_fitness = 0.0
        self.best_epoch = 0
        self.patience = patience or float("inf")
        self.possible_stop = False  # True one epoch before a stop would happen

    def __call__(self, epoch: int, fitness: float | None) -> bool:
        """Record this epoch's fitness; True when training should stop now."""
        if fitness is None:  # no validation this epoch
            return False
        if fitness >= self.best_fitness:
            self.best_fitness, self.best_epoch = fitness, epoch
        stale = epoch - self.best_epoch
        self.possible_stop = stale >= self.patience - 1
        if stale < self.patience:
            return False
        LOGGER.info(
            f"{colorstr('EarlyStopping: ')}stopping: fitness has not improved for {self.patience} epochs. "
            f"The best epoch was {self.best_epoch}, saved as best.pt.\n"
            f"Set patience=N for a different number of epochs, or patience=0 to never stop early."
        )
        return True


# Checkpoint helpers live in ultralytics.nn.checkpoints; imported here too, where upstream has them.
from ultralytics.nn.checkpoints import (  # noqa: F401
    convert_optimizer_state_dict_to_fp16,
    strip_optimizer,
)
