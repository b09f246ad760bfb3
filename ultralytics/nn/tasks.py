"""Models built from yaml files, and loading them back from checkpoints.

A model yaml lists layers as rows `[from, repeats, module, args]` under `backbone` and `head`;
`parse_model` turns the rows into an `nn.Sequential` whose layers remember where their inputs come
from (`.f`), their index (`.i`), class path (`.type`) and parameter count (`.np`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pickle
import re
from copy import deepcopy
from pathlib import Path

import torch
import torch.nn as nn

from ultralytics.nn import AddModules, modules
from ultralytics.nn.AddModules import FocalModulation
from ultralytics.nn.modules import Conv, RepConv, YamlArgs
from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS, LOGGER, colorstr, yaml_load
from ultralytics.utils.torch_utils import (
    fuse_conv_and_bn,
    initialize_weights,
    intersect_dicts,
    model_info,
)

# Names a yaml row may use for its module: the built-in blocks plus every nn.Module class that
# ultralytics/nn/AddModules/__init__.py exports. `nn.X` rows resolve through torch.nn instead.
MODULES: dict[str, type[nn.Module]] = {name: getattr(modules, name) for name in modules.__all__}
MODULES.update(
    {name: obj for name, obj in vars(AddModules).items() if inspect.isclass(obj) and issubclass(obj, nn.Module)}
)

# torch.nn layers whose yaml args need the input width prepended.
TORCH_YAML_ARGS: dict[type[nn.Module], YamlArgs] = {nn.BatchNorm2d: YamlArgs("same")}

MODELS_DIR = Path(__file__).resolve().parents[1] / "cfg" / "models"


class ModelYamlError(ValueError):
    """A model yaml that cannot be built: the message names the row and what is accepted."""


class BaseModel(nn.Module):
    """Runs a yaml-built layer list; subclasses add heads, losses and criterion construction."""

    def forward(self, x, *args, **kwargs):
        """A training batch dict computes the loss; an image tensor runs inference."""
        if isinstance(x, dict):
            return self.loss(x, *args, **kwargs)
        return self.predict(x, *args, **kwargs)

    def predict(self, x: torch.Tensor, profile: bool = False, visualize: bool = False, augment: bool = False, embed=None):
        return self._predict_once(x)

    def _predict_once(self, x: torch.Tensor):
        y = []  # outputs of layers that later layers read (self.save), else None
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def fuse(self, verbose: bool = True):
        """Fold BatchNorm into the preceding convolutions and RepConv branches into one kernel.

        Inference results stay the same (up to float rounding); training afterwards is not supported.
        """
        if not self.is_fused():
            for m in self.model.modules():
                if isinstance(m, Conv) and hasattr(m, "bn"):
                    m.conv = fuse_conv_and_bn(m.conv, m.bn)
                    delattr(m, "bn")
                    m.forward = m.forward_fuse
                elif isinstance(m, RepConv):
                    m.fuse_convs()
                    m.forward = m.forward_fuse
            self.info(verbose=verbose)
        return self

    def is_fused(self, thresh: int = 10) -> bool:
        """True when fewer than `thresh` BatchNorm layers remain.

        Only BatchNorm counts: RT-DETR's decoder keeps its LayerNorms after fusing.
        """
        return sum(isinstance(m, nn.BatchNorm2d) for m in self.modules()) < thresh

    def info(self, detailed: bool = False, verbose: bool = True, imgsz: int = 640):
        """Log `<yaml stem> summary: layers, parameters, gradients, GFLOPs` and return those numbers."""
        return model_info(self, detailed=detailed, verbose=verbose, imgsz=imgsz)

    def load(self, weights: dict | nn.Module, verbose: bool = True):
        """Copy every tensor whose name and shape match from a checkpoint dict, a model or a state_dict.

        Tensors that are missing here or differ in shape (e.g. class heads for another nc, a replaced
        layer) are skipped; the log line says how many of this model's tensors were filled.
        """
        if isinstance(weights, nn.Module):
            source = weights.state_dict()
        elif isinstance(weights, dict) and isinstance(weights.get("ema"), nn.Module):
            source = weights["ema"].state_dict()
        elif isinstance(weights, dict) and isinstance(weights.get("model"), nn.Module):
            source = weights["model"].state_dict()
        elif isinstance(weights, dict) and all(isinstance(v, torch.Tensor) for v in weights.values()):
            source = weights  # a plain state_dict
        else:
            raise TypeError(
                f"{type(self).__name__}.load() takes a checkpoint dict (with the model under 'model' or 'ema'), a "
                f"model, or a state_dict of tensors; got {type(weights).__name__}. To load a file, use "
                f"RTDETR(...).load('path.pt') or attempt_load_one_weight('path.pt')."
            )
        # load_state_dict copies into this model's dtype, so fp16 checkpoints need no conversion here.
        csd = intersect_dicts(source, self.state_dict())
        self.load_state_dict(csd, strict=False)
        if verbose:
            LOGGER.info(f"Transferred {len(csd)}/{len(self.model.state_dict())} items from pretrained weights")
        return self

    def loss(self, batch: dict, preds=None):
        if getattr(self, "criterion", None) is None:
            self.criterion = self.init_criterion()
        preds = self.forward(batch["img"]) if preds is None else preds
        return self.criterion(preds, batch)

    def init_criterion(self):
        raise NotImplementedError(f"{type(self).__name__} defines no training criterion; use RTDETRDetectionModel")


class DetectionModel(BaseModel):
    """A detector built from a model yaml (or an already loaded yaml dict)."""

    def __init__(self, cfg: str | Path | dict = "rtdetr-l.yaml", ch: int = 3, nc: int | None = None, verbose: bool = True):
        super().__init__()
        self.yaml = cfg if isinstance(cfg, dict) else yaml_model_load(cfg)
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc and nc != self.yaml.get("nc"):
            LOGGER.info(f"Overriding model.yaml nc={self.yaml.get('nc')} with nc={nc}")
            self.yaml["nc"] = nc
        self.model, self.save = parse_model(deepcopy(self.yaml), ch=ch, verbose=verbose)
        self.names = {i: f"{i}" for i in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)
        self.end2end = getattr(self.model[-1], "end2end", False)
        self.stride = torch.Tensor([32])  # RT-DETR's coarsest level; inputs must be multiples of it
        initialize_weights(self)
        if verbose:
            self.info()
            LOGGER.info("")


class RTDETRDetectionModel(DetectionModel):
    """RT-DETR: CNN backbone, hybrid encoder and a transformer decoder that needs no NMS."""

    def __init__(self, cfg: str | Path | dict = "rtdetr-l.yaml", ch: int = 3, nc: int | None = None, verbose: bool = True):
        super().__init__(cfg=cfg, ch=ch, nc=nc, verbose=verbose)

    def init_criterion(self):
        from ultralytics.models.utils.loss import RTDETRDetectionLoss

        return RTDETRDetectionLoss(nc=self.nc, use_vfl=True)

    @property
    def nc(self) -> int:
        return self.model[-1].nc

    @nc.setter
    def nc(self, value: int) -> None:
        # Trainers assign model.nc from the dataset; the head already owns the real value.
        self.yaml["nc"] = value

    def __getstate__(self) -> dict:
        # Upstream's class keeps `nc` as a plain instance attribute (its trainer sets it), and
        # upstream code reads it from unpickled models; write it so checkpoints from here carry it.
        state = dict(self.__dict__)
        state["nc"] = self.nc
        return state

    def loss(self, batch: dict, preds=None):
        """(total loss, detached [giou, cls, l1]) for a training batch.

        batch: img (bs, 3, H, W), cls (N, 1), bboxes (N, 4) normalised xywh, batch_idx (N,).
        """
        if getattr(self, "criterion", None) is None:
            self.criterion = self.init_criterion()
        img = batch["img"]
        bs = len(img)
        batch_idx = batch["batch_idx"]
        targets = {
            "cls": batch["cls"].to(img.device, dtype=torch.long).view(-1),  # (N,)
            "bboxes": batch["bboxes"].to(device=img.device),  # (N, 4)
            "batch_idx": batch_idx.to(img.device, dtype=torch.long).view(-1),  # (N,)
            "gt_groups": [(batch_idx == i).sum().item() for i in range(bs)],
        }
        preds = self.predict(img, batch=targets) if preds is None else preds
        dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta = preds if self.training else preds[1]
        if dn_meta is None:
            dn_bboxes, dn_scores = None, None
        else:
            # Denoising queries sit in front of the matching queries along the query axis.
            dn_bboxes, dec_bboxes = torch.split(dec_bboxes, dn_meta["dn_num_split"], dim=2)
            dn_scores, dec_scores = torch.split(dec_scores, dn_meta["dn_num_split"], dim=2)
        # The encoder's top-k proposals are supervised like an extra decoder layer, put first.
        dec_bboxes = torch.cat([enc_bboxes.unsqueeze(0), dec_bboxes])  # (ndl + 1, bs, nq, 4)
        dec_scores = torch.cat([enc_scores.unsqueeze(0), dec_scores])  # (ndl + 1, bs, nq, nc)
        loss = self.criterion(
            (dec_bboxes, dec_scores), targets, dn_bboxes=dn_bboxes, dn_scores=dn_scores, dn_meta=dn_meta
        )
        items = torch.as_tensor([loss[k].detach() for k in ("loss_giou", "loss_class", "loss_bbox")], device=img.device)
        return sum(loss.values()), items

    def predict(
        self,
        x: torch.Tensor,
        profile: bool = False,
        visualize: bool = False,
        batch: dict | None = None,
        augment: bool = False,
        embed=None,
    ):
        """Run the layers; the decoder also receives `batch` (targets for denoising in training)."""
        check_input_size(x, int(self.stride.max()))
        y = []
        for m in self.model[:-1]:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        head = self.model[-1]
        return head([y[j] for j in head.f], batch)


def check_input_size(x: torch.Tensor, stride: int) -> None:
    """Reject images whose height or width is not a multiple of the model's largest stride."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or not isinstance(x, torch.Tensor):
        return
    if x.dim() != 4:
        raise ValueError(f"expected an image batch of shape (batch, channels, height, width), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(
            f"input size {h}x{w} is not a multiple of the model stride {stride}: RT-DETR needs height and width "
            f"divisible by {stride} (e.g. {max(stride, round(h / stride) * stride)}x{max(stride, round(w / stride) * stride)}); "
            f"pass imgsz as a multiple of {stride}"
        )


# ----------------------------------------------------------------------------------------------
# yaml -> nn.Sequential
# ----------------------------------------------------------------------------------------------
def yaml_model_load(path: str | Path) -> dict:
    """Read a model yaml by path, or by file name from the package's cfg/models folders."""
    path = Path(path)
    if path.suffix not in {".yaml", ".yml"}:
        raise ModelYamlError(f"model config '{path}' must be a .yaml or .yml file")
    yaml_file = _find_model_yaml(path)
    d = yaml_load(yaml_file)
    d["scale"] = guess_model_scale(path)
    d["yaml_file"] = str(path)
    return d


def _find_model_yaml(path: Path) -> Path:
    if path.is_file():
        return path
    matches = sorted(MODELS_DIR.rglob(path.name))
    if matches:
        return matches[0]
    raise FileNotFoundError(
        f"model yaml '{path}' not found: looked at '{path.resolve()}' and under '{MODELS_DIR}' "
        f"(shipped: {', '.join(sorted(p.name for p in MODELS_DIR.rglob('*.yaml')))})"
    )


def guess_model_scale(model_path: str | Path) -> str:
    """The scale letter in names like 'yolov8n.yaml' (n), or '' when there is none.

    RT-DETR names ('rtdetr-l.yaml') carry no scale this way; parse_model then uses the yaml's only
    scale entry.
    """
    match = re.search(r"yolo[v]?\d+([nslmx])", Path(model_path).stem)
    return match.group(1) if match else ""


def _resolve_module(name: str, i: int) -> type[nn.Module]:
    if name.startswith("nn."):
        m = getattr(nn, name[3:], None)
        if inspect.isclass(m) and issubclass(m, nn.Module):
            return m
        raise ModelYamlError(f"layer {i}: '{name}' is not a torch.nn module class")
    if name in MODULES:
        return MODULES[name]
    raise ModelYamlError(
        f"layer {i}: unknown module '{name}'. Known modules: {', '.join(sorted(MODULES))}, or torch.nn classes "
        f"written as 'nn.Name'. A new module goes in a file under ultralytics/nn/AddModules and is exported from "
        f"its __init__.py (e.g. 'from .MyModule import *'), which makes its class name usable here; parse_model "
        f"fills its channel arguments from a 'yaml_args = YamlArgs(...)' class attribute or, as the article does "
        f"for FocalModulation, from a branch in parse_model ('elif m in {{FocalModulation}}: args = [ch[f], *args]')."
    )


def _literal_args(args: list, nc: int) -> list:
    """Turn yaml strings such as 'nc' and 'None' into values; other strings stay strings."""
    out = []
    for a in args:
        if isinstance(a, str):
            if a == "nc":
                a = nc
            else:
                try:
                    a = ast.literal_eval(a)
                except (ValueError, SyntaxError):
                    pass  # a genuine string argument such as "nearest"
        out.append(a)
    return out


def _check_from(f, i: int) -> None:
    """A row may read only from earlier layers; -1 on layer 0 means the input image."""
    for x in [f] if isinstance(f, int) else f:
        if not isinstance(x, int):
            raise ModelYamlError(f"layer {i}: 'from' entries must be ints (layer indices), got {x!r}")
        if not (x == -1 or (x < 0 and i + x >= 0) or 0 <= x < i):
            raise ModelYamlError(
                f"layer {i}: 'from' index {x} does not point to an earlier layer; use -1 for the previous layer, "
                f"a negative offset down to {-max(i, 1)}, or an absolute index 0..{i - 1}"
            )


def _check_signature(m: type[nn.Module], args: list, i: int, name: str) -> None:
    try:
        inspect.signature(m).bind(*args)
    except TypeError as e:
        raise ModelYamlError(
            f"layer {i}: {name} cannot take the arguments {args} ({e}); its signature is {name}{inspect.signature(m)}"
        ) from None


def parse_model(d: dict, ch: int, verbose: bool = True) -> tuple[nn.Sequential, list[int]]:
    """Build the layers described by a model yaml dict.

    Returns the layers and the sorted indices of layers whose outputs later layers read.
    """
    for key in ("backbone", "head"):
        if not isinstance(d.get(key), list):
            raise ModelYamlError(f"model yaml {d.get('yaml_file', '')!r} needs a '{key}' list of [from, repeats, module, args] rows")
    nc = d.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise ModelYamlError(f"model yaml {d.get('yaml_file', '')!r}: 'nc' must be a positive int, got {nc!r}")
    scales = d.get("scales")
    depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
    if scales:
        scale = d.get("scale") or next(iter(scales))
        if scale not in scales:
            raise ModelYamlError(f"model scale '{scale}' is not one of the yaml's scales {list(scales)}")
        depth, width, max_channels = scales[scale]

    if verbose:
        LOGGER.info(f"\n{'':>3}{'from':>20}{'n':>3}{'params':>10}  {'module':<45}{'arguments':<30}")
    rows = d["backbone"] + d["head"]
    ch = [ch]
    layers, save = [], []
    c2 = ch[-1]
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise ModelYamlError(f"layer {i}: a row must be [from, repeats, module, args], got {row!r}")
        f, n, name, args = row
        if not isinstance(name, str):
            raise ModelYamlError(f"layer {i}: the module must be a class name string, got {name!r}")
        m = _resolve_module(name, i)
        _check_from(f, i)
        if not isinstance(n, int) or n < 1:
            raise ModelYamlError(f"layer {i}: repeats must be an int >= 1, got {n!r}")
        args = _literal_args(list(args or []), nc)
        n = n_ = max(round(n * depth), 1) if n > 1 else n

        c2 = ch[f] if isinstance(f, int) else c2  # default: output width follows the input
        spec = getattr(m, "yaml_args", None) or TORCH_YAML_ARGS.get(m)
        if spec is not None:
            args, c2, n = spec.resolve(args, f, n, ch, width, max_channels, nc)
        elif m in {FocalModulation}:
            args = [ch[f], *args]
        _check_signature(m, args, i, name)

        m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
        t = f"{m.__module__}.{m.__qualname__}"
        m_.np = sum(x.numel() for x in m_.parameters())
        m_.i, m_.f, m_.type = i, f, t
        if verbose:
            LOGGER.info(f"{i:>3}{str(f):>20}{n_:>3}{m_.np:10.0f}  {t:<45}{str(args):<30}")
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        if i == 0:
            ch = []
        ch.append(c2)
    return nn.Sequential(*layers), sorted(save)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
# Loading policy. A checkpoint is a pickle, and unpickling an arbitrary file can run arbitrary
# code. Every checkpoint is therefore first read with torch's restricted unpickler
# (`weights_only=True`), which only rebuilds tensors, plain containers and the classes listed by
# `checkpoint_safe_globals()`: this package's model, layer and loss classes (including every
# module exported from ultralytics/nn/AddModules), torch.nn layers, the training-args namespace,
# numpy scalars/arrays and paths. Checkpoints written here or by upstream Ultralytics 8.3 (with or
# without the article's patch) contain nothing else. A file that needs any other class is refused
# with an error naming those classes, unless the caller trusts it: `torch_safe_load(w, trusted=True)`
# or the environment variable ULTRALYTICS_TRUST_CHECKPOINTS=1; only then is it fully unpickled,
# with a warning. Trust never helps with classes this package does not define (e.g. YOLO heads):
# those get their own error.
TRUST_ENV = "ULTRALYTICS_TRUST_CHECKPOINTS"


class CheckpointError(TypeError):
    """A file that cannot be used as a detection checkpoint; the message says why and what is accepted."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that needs classes outside the allow-list and was not marked as trusted."""


def _trust_from_env() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _module_classes(*namespaces) -> list[type]:
    """Every nn.Module subclass found in the given modules' namespaces."""
    found = []
    for ns in namespaces:
        found += [v for v in vars(ns).values() if inspect.isclass(v) and issubclass(v, nn.Module)]
    return found


def checkpoint_safe_globals() -> list:
    """The classes and functions a detection checkpoint may reference; see the loading policy above.

    Built on each call so that modules added under ultralytics/nn/AddModules are included.
    """
    import pathlib
    import sys

    import numpy as np

    import ultralytics.nn.modules.block
    import ultralytics.nn.modules.conv
    import ultralytics.nn.modules.head
    import ultralytics.nn.modules.transformer
    from ultralytics.models.utils import loss as detr_loss
    from ultralytics.models.utils import ops as detr_ops
    from ultralytics.utils import IterableSimpleNamespace
    from ultralytics.utils import loss as base_loss

    add_modules = [m for name, m in sys.modules.items() if name.startswith("ultralytics.nn.AddModules") and m]
    classes = _module_classes(
        sys.modules[__name__],
        ultralytics.nn.modules.block,
        ultralytics.nn.modules.conv,
        ultralytics.nn.modules.head,
        ultralytics.nn.modules.transformer,
        detr_loss,
        detr_ops,
        base_loss,
        *add_modules,
    )
    torch_layers = [
        m for name, m in vars(nn.modules).items() if not name.startswith("_") and inspect.ismodule(m)
    ]
    classes += _module_classes(*torch_layers)
    # numpy moved its internals from numpy.core to numpy._core in 2.0; pickles name either path.
    core = getattr(np, "_core", None) or np.core
    extra = [
        IterableSimpleNamespace,
        pathlib.PosixPath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        np.dtype,
        np.ndarray,
        core.multiarray.scalar,
        core.multiarray._reconstruct,
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    ]
    # numpy >= 1.25 pickles some dtypes by their class (numpy.dtypes.Float32DType, ...).
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        extra += [v for v in vars(dtypes).values() if inspect.isclass(v) and issubclass(v, np.dtype)]
    return list(dict.fromkeys(classes)) + extra


def _global_name(entry) -> str:
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def _unsafe_globals(file: Path, error: Exception) -> list[str]:
    """Names of the classes/functions in `file` that the restricted unpickler refused."""
    allowed = {_global_name(g) for g in checkpoint_safe_globals()}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError):
        # Legacy (non-zip) files cannot be scanned; torch names the first refused global instead.
        names = re.findall(r"GLOBAL ([\w.]+)", str(error))
    return sorted({n for n in names if n not in allowed})


def _resolvable(name: str) -> bool:
    """True when a dotted 'module.attr' path names something importable in this environment."""
    module, _, attr = name.rpartition(".")
    try:
        obj = importlib.import_module(module)
    except ImportError:
        return False
    return hasattr(obj, attr)


def _read_checkpoint(file: Path, weight, trusted: bool):
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(file, e)
        if not unsafe:
            raise CheckpointError(_unreadable_message(weight, e)) from e
        foreign = [n for n in unsafe if n.startswith("ultralytics.") and not _resolvable(n)]
        if foreign:
            raise CheckpointError(
                f"'{weight}' was written with classes this package does not have: {', '.join(foreign)}. This package "
                f"implements RT-DETR detection models only (ultralytics.nn.tasks.RTDETRDetectionModel and the layers in "
                f"ultralytics.nn.modules); a checkpoint using a module of your own loads once that module is defined "
                f"under ultralytics/nn/AddModules and exported from its __init__.py."
            ) from None
        if not trusted:
            raise UnsafeCheckpointError(
                f"'{weight}' refers to Python objects outside the detection-checkpoint allow-list: {', '.join(unsafe)}. "
                f"Loading it would let the file run code, so it was not loaded. If you trust where the file comes "
                f"from, set the environment variable {TRUST_ENV}=1 (or call torch_safe_load(path, trusted=True)) to "
                f"unpickle it fully."
            ) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError, IndexError, TypeError) as e:
        # zip, pickle-stream and storage errors: a truncated, corrupted or non-torch file
        raise CheckpointError(_unreadable_message(weight, e)) from e
    LOGGER.warning(
        f"WARNING ⚠️ '{weight}' refers to {', '.join(unsafe)} (outside the checkpoint allow-list); unpickling it fully "
        f"because it is trusted ({TRUST_ENV} or trusted=True). Only do this for files from a source you trust."
    )
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError, ImportError) as e:
        raise CheckpointError(_unreadable_message(weight, e)) from e


def _unreadable_message(weight, error: Exception) -> str:
    return (
        f"'{weight}' could not be read as a torch checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
        f"It may be truncated (an interrupted download or copy), corrupted, or not a file written by torch.save at "
        f"all; expected a .pt checkpoint as written by training (weights/best.pt, weights/last.pt) or Model.save()."
    )


def _is_detection_model(obj) -> bool:
    return isinstance(obj, BaseModel) and isinstance(getattr(obj, "model", None), nn.Sequential)


def _as_checkpoint_dict(ckpt, weight) -> dict:
    """Check the loaded object's layout; a bare pickled model is wrapped as {'model': model}."""
    if not isinstance(ckpt, dict):
        inner = getattr(ckpt, "_modules", {}).get("model") if isinstance(ckpt, nn.Module) else None
        model = ckpt if _is_detection_model(ckpt) else inner if _is_detection_model(inner) else None
        if model is None:
            raise CheckpointError(
                f"'{weight}' holds a {type(ckpt).__module__}.{type(ckpt).__qualname__}, not a detection checkpoint: "
                f"expected a dict with the model under 'model' or 'ema', as written by training or Model.save()"
            )
        LOGGER.warning(
            f"WARNING ⚠️ '{weight}' holds a bare {type(ckpt).__name__} rather than a checkpoint dict; use "
            f"model.save('file.pt') to write checkpoints that keep the training args."
        )
        return {"model": model}
    entry = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if _is_detection_model(entry):
        return ckpt
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"'{weight}' is a plain state_dict ({len(ckpt)} tensors such as '{next(iter(ckpt))}'), not a checkpoint: it "
            f"holds no model to rebuild. Build the model from its yaml and copy the tensors in, e.g. "
            f"model = RTDETR('rtdetr-l-FocalModulation.yaml'); model.model.load(torch.load('{weight}'))"
        )
    found = "nothing" if entry is None else f"a {type(entry).__module__}.{type(entry).__qualname__}"
    raise CheckpointError(
        f"'{weight}' is not an Ultralytics detection checkpoint: expected a dict whose 'model' or 'ema' entry is a "
        f"detection model (as written by training or Model.save()), found {found} there; the dict's keys are "
        f"{sorted(map(str, ckpt))[:10]}"
    )


def torch_safe_load(weight: str | Path, trusted: bool | None = None) -> tuple[dict, str]:
    """Read a checkpoint file under the loading policy above; returns (checkpoint dict, file path).

    trusted: allow full unpickling when the restricted read is refused; None reads ULTRALYTICS_TRUST_CHECKPOINTS.
    Raises FileNotFoundError for a missing file and CheckpointError (a TypeError) for anything that is
    not a detection checkpoint.
    """
    file = Path(weight)
    if not file.is_file():
        raise FileNotFoundError(
            f"checkpoint '{weight}' not found (looked at '{file.resolve()}'); pass the path of a .pt file written by "
            f"training (runs/detect/train*/weights/best.pt) or by Model.save()"
        )
    if file.stat().st_size == 0:
        raise CheckpointError(f"'{weight}' is an empty file, not a checkpoint (was it written completely?)")
    ckpt = _read_checkpoint(file, weight, _trust_from_env() if trusted is None else trusted)
    return _as_checkpoint_dict(ckpt, weight), str(file)


def _prepare_loaded(ckpt: dict, weight: str, device, inplace: bool, fuse: bool) -> nn.Module:
    """The checkpoint's model (EMA when present) in float32 eval mode, with args, pt_path, task and stride set."""
    train_args = {**DEFAULT_CFG_DICT, **dict(ckpt.get("train_args") or {})}
    model = (ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]).to(device).float()
    model.args = {k: v for k, v in train_args.items() if k in DEFAULT_CFG_KEYS}
    model.pt_path = weight
    model.task = "detect"
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    model = model.fuse(verbose=False).eval() if fuse and hasattr(model, "fuse") else model.eval()
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = inplace
        elif isinstance(m, nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None  # attribute missing in modules pickled by old torch versions
    return model


def attempt_load_one_weight(
    weight: str | Path,
    device=None,
    inplace: bool = True,
    fuse: bool = False,
) -> tuple[nn.Module, dict]:
    """(model, checkpoint dict) from one checkpoint file; the EMA weights are used when present."""
    ckpt, weight = torch_safe_load(weight)
    return _prepare_loaded(ckpt, weight, device, inplace, fuse), ckpt


class Ensemble(nn.ModuleList):
    """Several detectors whose query predictions are pooled along the query axis."""

    def forward(self, x, augment: bool = False, profile: bool = False, visualize: bool = False):
        outs = []
        for m in self:
            y = m(x)
            outs.append(y[0] if isinstance(y, tuple) else y)
        return torch.cat(outs, dim=1), None  # (bs, sum of queries, 4 + nc)


def attempt_load_weights(weights, device=None, inplace: bool = True, fuse: bool = False) -> nn.Module:
    """One model for one checkpoint, an Ensemble for a list of several."""
    paths = weights if isinstance(weights, (list, tuple)) else [weights]
    models = [attempt_load_one_weight(w, device, inplace, fuse)[0] for w in paths]
    if len(models) == 1:
        return models[0]
    first = models[0]
    if any(m.names != first.names for m in models):
        raise ValueError(
            f"models in an ensemble must share class names; got {[len(m.names) for m in models]} classes for {paths}"
        )
    ensemble = Ensemble(models)
    for k in ("names", "nc", "yaml", "args"):
        setattr(ensemble, k, getattr(first, k, None))
    ensemble.stride = models[int(torch.argmax(torch.tensor([m.stride.max() for m in models])))].stride
    LOGGER.info(f"{colorstr('Ensemble')} created with {weights}")
    return ensemble
