"""Models built from yaml files: the yaml parser and the detection model classes.

A model yaml lists layers as rows `[from, repeats, module, args]` under `backbone` and `head`;
`parse_model` turns the rows into an `nn.Sequential` whose layers remember where their inputs come
from (`.f`), their index (`.i`), class path (`.type`) and parameter count (`.np`).

The model classes and `Ensemble` live here because checkpoints pickle them as
`ultralytics.nn.tasks.<Class>`; reading and writing those files is `ultralytics.nn.checkpoints`.
"""

from __future__ import annotations

import ast
import inspect
import re
from contextlib import contextmanager, nullcontext
from copy import deepcopy
from pathlib import Path
from typing import Iterator, NamedTuple

import torch
import torch.nn as nn
import yaml

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
from ultralytics.nn.modules.yaml_args import RULE_TEXT
from ultralytics.utils import LOGGER, colorstr, yaml_load
from ultralytics.utils.plotting import feature_visualization, plot_focal_maps
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
TORCH_YAML_ARGS: dict[type[nn.Module], YamlArgs] = {nn.BatchNorm2d: YamlArgs("same", example="[-1, 1, {name}, []]")}

# The rule the article's FocalModulation branch in _constructor_args follows; used only to check rows.
BRANCH_RULES: dict[type[nn.Module], YamlArgs] = {FocalModulation: YamlArgs("same", example="[-1, 1, {name}, []]")}

MODELS_DIR = Path(__file__).resolve().parents[1] / "cfg" / "models"

# RT-DETR reads its coarsest feature map at 1/32 of the input; image sides must be multiples of it.
RTDETR_STRIDE = 32


class ModelYamlError(ValueError):
    """A model yaml that cannot be built: the message names the row and what is accepted."""


def _sources(f: int | list[int]) -> list[int]:
    """A row's `from` field as a list of layer indices."""
    return [f] if isinstance(f, int) else list(f)


def _layer_input(layer: nn.Module, previous, outputs: list):
    """What `layer` reads: the previous layer's output (-1), one kept output, or a list of them."""
    if layer.f == -1:
        return previous
    if isinstance(layer.f, int):
        return outputs[layer.f]
    return [previous if j == -1 else outputs[j] for j in layer.f]


class BaseModel(nn.Module):
    """Runs a yaml-built layer list; subclasses add heads, losses and criterion construction."""

    def forward(self, x, *args, **kwargs):
        """A training batch dict computes the loss; an image tensor runs inference."""
        run = self.loss if isinstance(x, dict) else self.predict
        return run(x, *args, **kwargs)

    def predict(
        self,
        x: torch.Tensor,
        profile: bool = False,
        visualize: bool = False,
        augment: bool = False,
        embed=None,
    ):
        """The last layer's output for an image batch (profile and augment are not implemented).

        visualize: a folder; every layer's feature maps of the first image are drawn there.
        embed: layer indices; returns (B, sum of their channels), each listed output averaged over H and W.
        """
        if embed:
            return self._embed(x, self.model, embed)
        return self._run_layers(x, self.model, visualize)[0]

    def _steps(self, x, layers) -> Iterator[tuple[nn.Module, object, list]]:
        """Feed `x` through `layers`, yielding (layer, its output, outputs kept so far: None where not kept)."""
        kept: list = []
        for layer in layers:
            x = layer(_layer_input(layer, x, kept))
            kept.append(x if layer.i in self.save else None)
            yield layer, x, kept

    def _run_layers(self, x, layers, visualize: bool | str | Path = False) -> tuple[object, list]:
        """Feed `x` through `layers`; returns the last output and the per-layer list (None where not kept).

        With `visualize` (a folder) each layer's feature maps of image 0 are drawn there, and every
        FocalModulation layer's modulator and gates too, over the input image.
        """
        image, kept = x, []
        with record_focal_maps(layers) if visualize else nullcontext({}) as focal:
            for layer, x, kept in self._steps(x, layers):
                if visualize:
                    feature_visualization(x, layer.type, layer.i, save_dir=Path(visualize))
        for index, maps in focal.items():
            plot_focal_maps(image[0], maps, index, save_dir=Path(visualize))
        return x, kept

    def _embed(self, x: torch.Tensor, layers, embed) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C1 + C2 + ...): the listed layers' (B, Ci, h, w) outputs averaged over h, w.

        The layers after the last listed one are not run.
        """
        wanted = _embed_layers(embed, layers)
        pooled = []
        for layer, out, _ in self._steps(x, layers):
            if layer.i in wanted:
                pooled.append(out.mean((2, 3)))  # (B, Ci), global average pool
            if layer.i == wanted[-1]:
                break
        return torch.cat(pooled, 1)

    def fuse(self, verbose: bool = True):
        """Fold BatchNorm into the preceding convolutions and RepConv branches into one kernel.

        Inference results stay the same (up to float rounding); training afterwards is not supported.
        """
        if self.is_fused():
            return self
        for layer in self.model.modules():
            if isinstance(layer, RepConv):
                layer.fuse_convs()
            elif isinstance(layer, Conv) and hasattr(layer, "bn"):
                layer.conv = fuse_conv_and_bn(layer.conv, layer.bn)
                del layer.bn
            else:
                continue
            layer.forward = layer.forward_fuse  # both kinds switch to their single-kernel path
        self.info(verbose=verbose)
        return self

    def is_fused(self, thresh: int = 10) -> bool:
        """True when fewer than `thresh` BatchNorm layers remain.

        Only BatchNorm counts: RT-DETR's decoder keeps its LayerNorms after fusing.
        """
        remaining = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        return len(remaining) < thresh

    def info(self, detailed: bool = False, verbose: bool = True, imgsz: int = 640):
        """Log `<yaml stem> summary: layers, parameters, gradients, GFLOPs` and return those numbers."""
        return model_info(self, detailed, verbose, imgsz)

    def load(self, weights: dict | nn.Module, verbose: bool = True):
        """Copy every tensor whose name and shape match from a checkpoint dict, a model or a state_dict.

        Tensors that are missing here or differ in shape (e.g. class heads for another nc, a replaced
        layer) are skipped; the log line says how many of this model's tensors were filled.
        """
        # load_state_dict copies into this model's dtype, so fp16 checkpoints need no conversion here.
        matching = intersect_dicts(_state_dict_of(weights, type(self).__name__), self.state_dict())
        self.load_state_dict(matching, strict=False)
        if verbose:
            total = len(self.model.state_dict())
            LOGGER.info(f"Transferred {len(matching)}/{total} items from pretrained weights")
        return self

    def _training_criterion(self):
        """The loss module, built on first use; it joins the module tree only then, as upstream's does."""
        if getattr(self, "criterion", None) is None:
            self.criterion = self.init_criterion()
        return self.criterion

    def loss(self, batch: dict, preds=None):
        """The criterion applied to `preds` (computed from batch['img'] when not given) and the batch."""
        criterion = self._training_criterion()
        return criterion(self.forward(batch["img"]) if preds is None else preds, batch)

    def init_criterion(self):
        raise NotImplementedError(f"{type(self).__name__} defines no training criterion; use RTDETRDetectionModel")


def _state_dict_of(weights, owner: str) -> dict:
    """The tensors to load from a model, a checkpoint dict ('ema' preferred over 'model') or a state_dict."""
    if isinstance(weights, nn.Module):
        return weights.state_dict()
    if isinstance(weights, dict):
        for key in ("ema", "model"):
            if isinstance(weights.get(key), nn.Module):
                return weights[key].state_dict()
        if all(isinstance(v, torch.Tensor) for v in weights.values()):
            return weights
    raise TypeError(
        f"{owner}.load() takes a checkpoint dict (with the model under 'model' or 'ema'), a model, or a "
        f"state_dict of tensors; got {type(weights).__name__}. To load a file, use RTDETR(...).load('path.pt') "
        f"or attempt_load_one_weight('path.pt')."
    )


def _override_nc(spec: dict, nc: int | None) -> None:
    """Let a caller's class count replace the yaml's, saying so in the log."""
    if nc and nc != spec.get("nc"):
        LOGGER.info(f"Overriding model.yaml nc={spec.get('nc')} with nc={nc}")
        spec["nc"] = nc


class DetectionModel(BaseModel):
    """A detector built from a model yaml (or an already loaded yaml dict)."""

    def __init__(
        self,
        cfg: str | Path | dict = "rtdetr-l.yaml",
        ch: int = 3,
        nc: int | None = None,
        verbose: bool = True,
    ):
        super().__init__()
        # 1. the yaml dict, with the input channels and class count this model is built for
        self.yaml = cfg if isinstance(cfg, dict) else yaml_model_load(cfg)
        ch = self.yaml.setdefault("ch", ch)
        _override_nc(self.yaml, nc)
        # 2. the layers (parse_model creates every parameter, in yaml order) and model attributes
        layers, kept = parse_model(deepcopy(self.yaml), ch=ch, verbose=verbose)
        self.model, self.save = layers, kept
        self.names = {k: str(k) for k in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)
        self.end2end = getattr(layers[-1], "end2end", False)
        self.stride = torch.tensor([float(RTDETR_STRIDE)])
        # 3. BatchNorm settings and the summary line
        initialize_weights(self)
        if verbose:
            self.info()
            LOGGER.info("")


class RTDETRDetectionModel(DetectionModel):
    """RT-DETR: CNN backbone, hybrid encoder and a transformer decoder that needs no NMS.

    Built exactly as DetectionModel (same constructor); adds the RT-DETR criterion and decoder call.
    """

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
        return {**self.__dict__, "nc": self.nc}

    def loss(self, batch: dict, preds=None):
        """(total loss, detached [giou, cls, l1]) for a training batch.

        batch: img (bs, 3, H, W), cls (N, 1), bboxes (N, 4) normalised xywh, batch_idx (N,).
        The criterion turns the batch into targets and reads the decoder's output; this class does
        not need to know either layout.
        """
        criterion = self._training_criterion()
        targets = criterion.targets_from_batch(batch)
        if preds is None:
            preds = self.predict(batch["img"], batch=targets)
        return criterion.from_decoder(preds, targets)

    def predict(
        self,
        x: torch.Tensor,
        profile: bool = False,
        visualize: bool = False,
        batch: dict | None = None,
        augment: bool = False,
        embed=None,
    ):
        """Run the layers; the decoder also receives `batch` (targets for denoising in training).

        visualize and embed work as in BaseModel.predict; embed may list any layer before the decoder.
        """
        check_input_size(x, int(self.stride.max()))
        *body, head = self.model
        if embed:
            return self._embed(x, body, embed)
        _, kept = self._run_layers(x, body, visualize)
        return head([kept[j] for j in head.f], batch)


def _embed_layers(embed, layers) -> list[int]:
    """embed= as sorted layer indices, each naming a layer of `layers` that outputs (B, C, h, w) maps."""
    indices = [embed] if isinstance(embed, int) else list(embed)
    available = [layer.i for layer in layers]
    wrong = [i for i in indices if not isinstance(i, int) or isinstance(i, bool) or i not in available]
    if wrong or not indices:
        raise ValueError(
            f"embed={embed!r}: expected a list of layer indices between {available[0]} and {available[-1]} "
            f"(the layers whose feature maps are pooled; the decoder is not one), got {wrong or indices}"
        )
    return sorted(set(indices))


@contextmanager
def record_focal_maps(layers) -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """Within the block, note what every FocalModulation layer among `layers` computes, per layer index.

    Each entry is {'gates': (B, L + 1, h, w), 'modulator': (B, C, h, w)}: the per-position weights of the L
    focal levels and the global level, and the projected context h(ctx_all) that multiplies the query.
    Forward hooks on the existing `f_linear` and `h` convolutions read them, so the module, its
    state_dict and its output stay exactly as they are; the hooks are removed on exit.
    """
    found: dict[int, dict[str, torch.Tensor]] = {}
    handles = []
    for layer in layers:
        if not isinstance(layer, FocalModulation):
            continue
        maps = found.setdefault(layer.i, {})
        levels = layer.focal_level + 1

        def keep_gates(_m, _inputs, out, maps=maps, levels=levels):
            maps["gates"] = out[:, -levels:].detach()  # f_linear splits into (query, context, gates)

        def keep_modulator(_m, _inputs, out, maps=maps):
            maps["modulator"] = out.detach()

        handles += [layer.f_linear.register_forward_hook(keep_gates), layer.h.register_forward_hook(keep_modulator)]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def check_input_size(x: torch.Tensor, stride: int) -> None:
    """Reject images whose height or width is not a multiple of the model's largest stride."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or not isinstance(x, torch.Tensor):
        return
    if x.dim() != 4:
        raise ValueError(
            f"expected an image batch of shape (batch, channels, height, width), got shape {tuple(x.shape)}"
        )
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        near_h, near_w = (max(stride, round(side / stride) * stride) for side in (h, w))
        raise ValueError(
            f"input size {h}x{w} is not a multiple of the model stride {stride}: RT-DETR needs height and width "
            f"divisible by {stride} (e.g. {near_h}x{near_w}); pass imgsz as a multiple of {stride}"
        )


# ----------------------------------------------------------------------------------------------
# yaml -> nn.Sequential
# ----------------------------------------------------------------------------------------------
def yaml_model_load(path: str | Path) -> dict:
    """Read a model yaml by path, or by file name from the package's cfg/models folders."""
    path = Path(path)
    if path.suffix not in {".yaml", ".yml"}:
        raise ModelYamlError(f"model config '{path}' must be a .yaml or .yml file")
    found = _find_model_yaml(path)
    try:
        spec = yaml_load(found)
    except yaml.YAMLError as e:
        raise ModelYamlError(f"model yaml '{found}' is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(spec, dict):
        raise ModelYamlError(
            f"model yaml '{found}' must be a mapping with 'nc', 'backbone' and 'head' keys, got a {type(spec).__name__}"
        )
    return {**spec, "scale": guess_model_scale(path), "yaml_file": str(path)}


def _find_model_yaml(path: Path) -> Path:
    if path.is_file():
        return path
    matches = sorted(MODELS_DIR.rglob(path.name))
    if matches:
        return matches[0]
    shipped = ", ".join(sorted(p.name for p in MODELS_DIR.rglob("*.yaml")))
    raise FileNotFoundError(
        f"model yaml '{path}' not found: looked at '{path.resolve()}' and under '{MODELS_DIR}' (shipped: {shipped})"
    )


def guess_model_scale(model_path: str | Path) -> str:
    """The scale letter in names like 'yolov8n.yaml' (n), or '' when there is none.

    RT-DETR names ('rtdetr-l.yaml') carry no scale this way; parse_model then uses the yaml's only
    scale entry.
    """
    found = re.search(r"yolo[v]?\d+([nslmx])", Path(model_path).stem)
    return found.group(1) if found else ""


def _resolve_module(name: str, i: int) -> type[nn.Module]:
    if name in MODULES:
        return MODULES[name]
    if name.startswith("nn."):
        candidate = getattr(nn, name[3:], None)
        if inspect.isclass(candidate) and issubclass(candidate, nn.Module):
            return candidate
        raise ModelYamlError(f"layer {i}: '{name}' is not a torch.nn module class")
    raise ModelYamlError(
        f"layer {i}: unknown module '{name}'. Known modules: {', '.join(sorted(MODULES))}, or torch.nn classes "
        f"written as 'nn.Name'. A new module goes in a file under ultralytics/nn/AddModules and is exported from "
        f"its __init__.py (e.g. 'from .MyModule import *'), which makes its class name usable here; parse_model "
        f"fills its channel arguments from a 'yaml_args = YamlArgs(...)' class attribute or, as the article does "
        f"for FocalModulation, from a branch in parse_model ('elif m in {{FocalModulation}}: args = [ch[f], *args]')."
    )


def _yaml_value(value, nc: int):
    """A yaml arg as the constructor gets it: 'nc' is the class count, strings that spell a Python
    literal ('None', '[1, 2]') become that literal, any other string (e.g. 'nearest') stays as written."""
    if not isinstance(value, str):
        return value
    if value == "nc":
        return nc
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _check_from(f, i: int) -> None:
    """A row may read only from earlier layers; -1 on layer 0 means the input image."""
    for j in _sources(f):
        if not isinstance(j, int):
            raise ModelYamlError(f"layer {i}: 'from' entries must be ints (layer indices), got {j!r}")
        backwards = j == -1 or (j < 0 and i + j >= 0) or 0 <= j < i
        if not backwards:
            raise ModelYamlError(
                f"layer {i}: 'from' index {j} does not point to an earlier layer; use -1 for the previous layer, "
                f"a negative offset down to {-max(i, 1)}, or an absolute index 0..{i - 1}"
            )


def _check_signature(m: type[nn.Module], args: list, i: int, name: str) -> None:
    try:
        inspect.signature(m).bind(*args)
    except TypeError as e:
        problem = f"cannot take the arguments {args} ({e}); its signature is {name}{inspect.signature(m)}"
        raise _row_error(i, name, m, problem) from None


# Top-level keys a model yaml may hold (upstream's, plus what DetectionModel and yaml_model_load add).
MODEL_YAML_KEYS = frozenset(
    {"nc", "scales", "scale", "depth_multiple", "width_multiple", "backbone", "head", "activation", "act"}
    | {"ch", "channels", "kpt_shape", "inplace", "yaml_file"}
)

# Activations a yaml's `activation:` (upstream's key) or `act:` may name, written as nn.Name(literal args).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.LeakyReLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Mish)
    + (nn.ELU, nn.CELU, nn.SELU, nn.PReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Identity)
}


def _warn_unknown_keys(d: dict) -> None:
    unknown = sorted(map(str, set(d) - MODEL_YAML_KEYS))
    if unknown:
        LOGGER.warning(
            f"WARNING ⚠️ model yaml {d.get('yaml_file', '')!r}: ignoring unknown top-level key(s) {unknown}; the keys a "
            f"model yaml may hold are {sorted(MODEL_YAML_KEYS)}"
        )


def yaml_activation(d: dict) -> nn.Module | None:
    """The activation a yaml's `activation:` (or `act:`) key names, or None when it names none.

    Read from the ACTIVATIONS table, never evaluated: 'nn.LeakyReLU(0.1)' builds nn.LeakyReLU(0.1).
    """
    key = "activation" if d.get("activation") else "act"
    text = d.get(key)
    if not text:
        return None  # upstream also ignores an empty or false value
    where = f"model yaml {d.get('yaml_file', '')!r}: '{key}: {text}'"
    call = _parse_expression(text) if isinstance(text, str) else None
    func = call.func if isinstance(call, ast.Call) else call
    prefix, _, name = (ast.unparse(func) if isinstance(func, ast.Attribute) else "").rpartition(".")
    if prefix not in {"nn", "torch.nn"} or name not in ACTIVATIONS:
        raise ModelYamlError(
            f"{where} is not an activation this package can build: write nn.Name(arguments) with a name from "
            f"{sorted(ACTIVATIONS)} and literal arguments, e.g. 'activation: nn.ReLU()' or 'activation: nn.LeakyReLU(0.1)'"
        )
    try:
        args = [ast.literal_eval(a) for a in getattr(call, "args", [])]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in getattr(call, "keywords", [])}
    except ValueError:
        raise ModelYamlError(f"{where}: the arguments must be literals such as 0.1 or True") from None
    try:
        return ACTIVATIONS[name](*args, **kwargs)
    except TypeError as e:
        raise ModelYamlError(f"{where}: nn.{name} cannot be built from those arguments ({e})") from None


def _parse_expression(text: str) -> ast.expr | None:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None


@contextmanager
def _default_activation(act: nn.Module | None) -> Iterator[None]:
    """Conv (and the subclasses that inherit its default, like DWConv) use `act` while the layers are built.

    Upstream assigns Conv.default_act for good, so later models inherit it; here the built model is
    the same, and the class default is restored afterwards.
    """
    saved = Conv.default_act
    if act is not None:
        Conv.default_act = act
    try:
        yield
    finally:
        Conv.default_act = saved


def _check_layout(d: dict) -> int:
    """Reject a yaml without backbone/head lists or a valid class count; returns nc."""
    where = repr(d.get("yaml_file", ""))
    for key in ("backbone", "head"):
        if not isinstance(d.get(key), list):
            raise ModelYamlError(f"model yaml {where} needs a '{key}' list of [from, repeats, module, args] rows")
    nc = d.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise ModelYamlError(f"model yaml {where}: 'nc' must be a positive int, got {nc!r}")
    return nc


def _scaling(d: dict) -> tuple[float, float, float]:
    """(depth multiple, width multiple, channel cap) from the yaml's chosen scale, or its top-level multiples."""
    scales = d.get("scales")
    if not scales:
        return d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
    scale = d.get("scale") or next(iter(scales))  # RT-DETR yamls list one scale
    if scale not in scales:
        raise ModelYamlError(f"model scale '{scale}' is not one of the yaml's scales {list(scales)}")
    depth, width, cap = scales[scale]
    return depth, width, cap


class _Row(NamedTuple):
    """One validated yaml row: `from`, repeats after depth scaling, module class, its yaml name, args."""

    f: int | list[int]
    repeats: int
    m: type[nn.Module]
    name: str
    args: list


def _read_row(row, i: int, nc: int, depth: float) -> _Row:
    """Validate one `[from, repeats, module, args]` row and apply the depth multiple to its repeats."""
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        raise ModelYamlError(f"layer {i}: a row must be [from, repeats, module, args], got {row!r}")
    f, n, name, args = row
    if not isinstance(name, str):
        raise ModelYamlError(f"layer {i}: the module must be a class name string, got {name!r}")
    m = _resolve_module(name, i)
    _check_from(f, i)
    if not isinstance(n, int) or n < 1:
        raise ModelYamlError(f"layer {i}: repeats must be an int >= 1, got {n!r}")
    if args is None:
        args = []
    if not isinstance(args, (list, tuple)):
        raise _row_error(i, name, m, f"takes its args as a list, got {args!r} ({type(args).__name__})")
    args = [_yaml_value(a, nc) for a in args]
    problem = _checked_rule(m).mismatch(args, f)
    if problem:
        raise _row_error(i, name, m, problem, args)
    repeats = n if n == 1 else max(round(n * depth), 1)  # the depth multiple scales stacked blocks only
    return _Row(f, repeats, m, name, args)


# How a module without a declared rule is built, in the words of error messages.
_UNDECLARED_TEXT = "none declared: args are passed as written and the output keeps the input's width"


class _Undeclared(YamlArgs):
    """The rule of a module without a declaration: one input, args as written, the input's width."""

    def mismatch(self, args: list, f: int | list[int]) -> str | None:
        if isinstance(f, int):
            return None
        return (
            f"reads the list 'from' {f} but declares no rule for combining inputs, so its output width is unknown; "
            f"join the inputs with a Concat row first, or give its class 'yaml_args = YamlArgs(\"sum\")' (or "
            f"YamlArgs(\"given\", out_channels=...))"
        )


_UNDECLARED = _Undeclared("same")  # channels as parse_model treats an undeclared module with one input


def _declared_rule(m: type[nn.Module]) -> YamlArgs | None:
    """The yaml_args declaration parse_model builds `m`'s args from (None: args as written)."""
    return getattr(m, "yaml_args", None) or TORCH_YAML_ARGS.get(m)


def _checked_rule(m: type[nn.Module]) -> YamlArgs:
    """The rule a row of `m` is checked against: its declaration, the article's branch, or _Undeclared."""
    return _declared_rule(m) or BRANCH_RULES.get(m) or _UNDECLARED


def _row_error(i: int, name: str, m: type[nn.Module], problem: str, written: list | None = None) -> ModelYamlError:
    """'layer i: Module <problem>. Its yaml rule is ...: <what it does>. A correct row: <example>'.

    written: the row's args, quoted in the example for a module without a declared rule.
    """
    rule = _checked_rule(m)
    if rule is _UNDECLARED:
        described = _UNDECLARED_TEXT
        example = f"[[-1, 6], 1, Concat, [1]] followed by [-1, 1, {name}, {written or []}]"
    else:
        described = f"'{rule.channels}': {RULE_TEXT[rule.channels]}"
        example = rule.example.format(name=name) if rule.example else f"[-1, 1, {name}, [...]]"
    return ModelYamlError(f"layer {i}: {name} {problem}. Its yaml rule is {described}. A correct row: {example}")


def _constructor_args(
    m: type[nn.Module],
    args: list,
    f: int | list[int],
    n: int,
    ch: list[int],
    c2: int | None,
    scaling: tuple[float, float, float],
    nc: int,
) -> tuple[list, int | None, int]:
    """(constructor args, output width, copies to stack) for one row.

    ch holds the output width of every earlier layer (the image's channels before layer 0). A class
    that declares `yaml_args` says how its args are filled in; otherwise the article's branch below
    applies, and any other module gets its yaml args unchanged.
    """
    spec = _declared_rule(m)
    if spec is not None:
        _, width, max_channels = scaling
        return spec.resolve(args, f, n, ch, width, max_channels, nc)
    elif m in {FocalModulation}:
        args = [ch[f], *args]
    return args, c2, n


def _table_line(index, source, repeats, params, module, arguments) -> str:
    """One line of the layer table parse_model prints (column widths as upstream's, which users parse)."""
    return f"{index:>3}{source:>20}{repeats:>3}{params:>10}  {module:<45}{arguments:<30}"


def _instantiate(m: type[nn.Module], args: list, copies: int) -> nn.Module:
    """One module, or `copies` of it chained in an nn.Sequential (each built, and so initialised, in turn)."""
    if copies == 1:
        return m(*args)
    return nn.Sequential(*[m(*args) for _ in range(copies)])


def parse_model(d: dict, ch: int, verbose: bool = True) -> tuple[nn.Sequential, list[int]]:
    """Build the layers described by a model yaml dict.

    Every row is checked before the first layer is built. Returns the layers and the sorted indices
    of layers whose outputs later layers read.
    """
    nc = _check_layout(d)
    _warn_unknown_keys(d)
    scaling = _scaling(d)
    rows = [_read_row(row, i, nc, scaling[0]) for i, row in enumerate(d["backbone"] + d["head"])]
    act = yaml_activation(d)
    if act is not None and verbose:
        LOGGER.info(f"{colorstr('activation:')} {d.get('activation') or d.get('act')}")
    with _default_activation(act):
        return _build_layers(rows, ch, scaling, nc, verbose)


def _build_layers(
    rows: list[_Row],
    ch: int,
    scaling: tuple[float, float, float],
    nc: int,
    verbose: bool,
) -> tuple[nn.Sequential, list[int]]:
    """The checked rows as layers, printing the layer table; returns (layers, indices of kept outputs)."""
    if verbose:
        LOGGER.info("\n" + _table_line("", "from", "n", "params", "module", "arguments"))
    layers, kept, widths = [], [], []  # widths[k]: output channels of layer k
    c2 = ch
    for i, (f, repeats, m, name, args) in enumerate(rows):
        inputs = widths or [ch]
        if isinstance(f, int):
            c2 = inputs[f]  # by default a layer keeps its input's width
        args, c2, copies = _constructor_args(m, args, f, repeats, inputs, c2, scaling, nc)
        _check_signature(m, args, i, name)
        layer = _instantiate(m, args, copies)
        layer.i, layer.f = i, f
        layer.type = f"{m.__module__}.{m.__qualname__}"
        layer.np = sum(p.numel() for p in layer.parameters())
        if verbose:
            LOGGER.info(_table_line(i, str(f), repeats, layer.np, layer.type, str(args)))
        kept += [j % i for j in _sources(f) if j != -1]
        layers.append(layer)
        widths.append(c2)
    return nn.Sequential(*layers), sorted(kept)


class Ensemble(nn.ModuleList):
    """Several detectors whose query predictions are pooled along the query axis."""

    def forward(self, x, augment: bool = False, profile: bool = False, visualize: bool = False):
        """(bs, sum of the members' queries, 4 + nc), None."""
        preds = []
        for member in self:
            out = member(x)
            preds.append(out[0] if isinstance(out, tuple) else out)  # eval output is (y, raw)
        return torch.cat(preds, dim=1), None
