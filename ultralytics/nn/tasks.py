"""Models built from yaml files, and loading them back from checkpoints.

A model yaml lists layers as rows `[from, repeats, module, args]` under `backbone` and `head`;
`parse_model` turns the rows into an `nn.Sequential` whose layers remember where their inputs come
from (`.f`), their index (`.i`), class path (`.type`) and parameter count (`.np`).
"""

from __future__ import annotations

import ast
import inspect
import re
from copy import deepcopy
from pathlib import Path

import torch
import torch.nn as nn

from ultralytics.nn import AddModules, modules
from ultralytics.nn.AddModules import FocalModulation
from ultralytics.nn.checkpoints import (  # noqa: F401  re-exported: upstream scripts import them from here
    TRUST_ENV,
    CheckpointError,
    UnsafeCheckpointError,
    attempt_load_one_weight,
    attempt_load_weights,
    checkpoint_safe_globals,
    torch_safe_load,
)
from ultralytics.nn.modules import Conv, RepConv, YamlArgs
from ultralytics.utils import LOGGER, yaml_load
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
        targets = self.criterion.targets_from_batch(batch)
        preds = self.predict(batch["img"], batch=targets) if preds is None else preds
        return self.criterion.from_decoder(preds, targets)

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


class Ensemble(nn.ModuleList):
    """Several detectors whose query predictions are pooled along the query axis."""

    def forward(self, x, augment: bool = False, profile: bool = False, visualize: bool = False):
        outs = []
        for m in self:
            y = m(x)
            outs.append(y[0] if isinstance(y, tuple) else y)
        return torch.cat(outs, dim=1), None  # (bs, sum of queries, 4 + nc)
