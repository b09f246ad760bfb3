"""Reading and writing checkpoint files: the restricted unpickler, atomic writes, stripping for release.

Everything that touches a checkpoint on disk goes through here; `ultralytics.nn.tasks` and
`ultralytics.utils.torch_utils` re-export the names that upstream scripts import from them.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pickle
import re
from copy import deepcopy
from pathlib import Path

import torch
import torch.nn as nn

from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS, LOGGER, colorstr

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


def _package_classes() -> list[type]:
    """This package's model, layer and loss classes, including every module under ultralytics/nn/AddModules."""
    import sys

    import ultralytics.nn.modules.block
    import ultralytics.nn.modules.conv
    import ultralytics.nn.modules.head
    import ultralytics.nn.modules.transformer
    from ultralytics.models.utils import loss as detr_loss
    from ultralytics.models.utils import ops as detr_ops
    from ultralytics.utils import loss as base_loss

    add_modules = [m for name, m in sys.modules.items() if name.startswith("ultralytics.nn.AddModules") and m]
    return _module_classes(
        sys.modules["ultralytics.nn.tasks"],
        ultralytics.nn.modules.block,
        ultralytics.nn.modules.conv,
        ultralytics.nn.modules.head,
        ultralytics.nn.modules.transformer,
        detr_loss,
        detr_ops,
        base_loss,
        *add_modules,
    )


def _torch_layer_classes() -> list[type]:
    """Every public nn.Module class in torch.nn.modules' submodules (linear, conv, upsampling, ...)."""
    submodules = [m for name, m in vars(nn.modules).items() if not name.startswith("_") and inspect.ismodule(m)]
    return _module_classes(*submodules)


def _plain_value_globals() -> list:
    """The training-args namespace, paths, and numpy arrays/scalars/dtypes as pickles name them."""
    import pathlib

    import numpy as np

    from ultralytics.utils import IterableSimpleNamespace

    # numpy moved its internals from numpy.core to numpy._core in 2.0; pickles name either path.
    core = getattr(np, "_core", None) or np.core
    found = [
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
        found += [v for v in vars(dtypes).values() if inspect.isclass(v) and issubclass(v, np.dtype)]
    return found


class _RefusedLookup(Exception):
    """Raised from inside torch.load (which would rewrap an UnpicklingError) for a getattr outside FUSED_METHODS."""


# Attributes a fused layer stores as bound methods: fuse() sets `layer.forward = layer.forward_fuse`,
# which pickles as `builtins.getattr(layer, "forward_fuse")`. Upstream's fuse writes the same.
FUSED_METHODS = frozenset({"forward_fuse"})


def _fused_method_lookup(classes: list[type]):
    """A stand-in for `builtins.getattr` while unpickling: it only looks up a fused forward of `classes`.

    A plain getattr would let a file reach any attribute of any allowed object (and from there, modules
    and functions), so every other lookup is refused with the layer and the attribute named.
    """
    owners = {cls for cls in classes if any(hasattr(cls, name) for name in FUSED_METHODS)}

    def fused_method(layer, name: str):
        if name not in FUSED_METHODS or type(layer) not in owners:
            raise _RefusedLookup(f"getattr({type(layer).__module__}.{type(layer).__qualname__}, {name!r})")
        return getattr(layer, name)

    return fused_method


def checkpoint_safe_globals() -> list:
    """The classes and functions a detection checkpoint may reference; see the loading policy above.

    Built on each call so that modules added under ultralytics/nn/AddModules are included.
    """
    classes = _package_classes() + _torch_layer_classes()
    return list(dict.fromkeys(classes)) + _plain_value_globals()


def _unpickling_globals() -> list:
    """The allow-list plus the restricted stand-in for `builtins.getattr` (the real one is never allowed)."""
    return [*checkpoint_safe_globals(), (_fused_method_lookup(_package_classes()), "builtins.getattr")]


def _global_name(entry) -> str:
    return entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"


def _unsafe_globals(file: Path, error: Exception) -> list[str]:
    """Names of the classes/functions in `file` that the restricted unpickler refused."""
    allowed = {_global_name(g) for g in _unpickling_globals()}
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


# What torch.load raises for zip, pickle-stream and storage damage: a truncated, corrupted or non-torch file.
_DAMAGED = (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError, IndexError, TypeError)


def _refuse_or_trust(file: Path, weight, error: pickle.UnpicklingError, trusted: bool) -> list[str]:
    """Why the restricted read failed. Raises unless the only obstacle is a trusted file's extra classes,
    whose names are then returned."""
    unsafe = _unsafe_globals(file, error)
    if not unsafe:
        raise CheckpointError(_unreadable_message(weight, error)) from error
    foreign = [n for n in unsafe if n.startswith("ultralytics.") and not _resolvable(n)]
    if foreign:
        raise CheckpointError(
            f"'{weight}' was written with classes this package does not have: {', '.join(foreign)}. This package "
            f"implements RT-DETR detection models only (ultralytics.nn.tasks.RTDETRDetectionModel and the layers in "
            f"ultralytics.nn.modules); a checkpoint using a module of your own loads once that module is defined "
            f"under ultralytics/nn/AddModules and exported from its __init__.py."
        ) from None
    if not trusted:
        raise UnsafeCheckpointError(_untrusted_message(weight, ", ".join(unsafe))) from None
    return unsafe


def _untrusted_message(weight, what: str) -> str:
    return (
        f"'{weight}' refers to Python objects outside the detection-checkpoint allow-list: {what}. "
        f"Loading it would let the file run code, so it was not loaded. If you trust where the file comes "
        f"from, set the environment variable {TRUST_ENV}=1 (or call torch_safe_load(path, trusted=True)) to "
        f"unpickle it fully."
    )


def _read_checkpoint(file: Path, weight, trusted: bool):
    """The unpickled file: restricted first; fully only for a trusted file the restricted read refused."""
    try:
        with torch.serialization.safe_globals(_unpickling_globals()):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refuse_or_trust(file, weight, e, trusted)
    except _RefusedLookup as e:
        lookup = f"{e} (a checkpoint may look up only {sorted(FUSED_METHODS)} of this package's layers, what fuse() stores)"
        if not trusted:
            raise UnsafeCheckpointError(_untrusted_message(weight, f"refused {lookup}")) from None
        refused = [lookup]
    except _DAMAGED as e:
        raise CheckpointError(_unreadable_message(weight, e)) from e
    LOGGER.warning(
        f"WARNING ⚠️ '{weight}' refers to {', '.join(refused)} (outside the checkpoint allow-list); unpickling it fully "
        f"because it is trusted ({TRUST_ENV} or trusted=True). Only do this for files from a source you trust."
    )
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, ImportError, *_DAMAGED) as e:
        raise CheckpointError(_unreadable_message(weight, e)) from e


def _unreadable_message(weight, error: Exception) -> str:
    return (
        f"'{weight}' could not be read as a torch checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
        f"It may be truncated (an interrupted download or copy), corrupted, or not a file written by torch.save at "
        f"all; expected a .pt checkpoint as written by training (weights/best.pt, weights/last.pt) or Model.save()."
    )


def _is_detection_model(obj) -> bool:
    from ultralytics.nn.tasks import BaseModel

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


# RT-DETR's stride, for models pickled without one.
_DEFAULT_STRIDE = 32.0

# Training state that an inference checkpoint does not need; strip_optimizer empties these entries.
_TRAINING_ONLY = ("optimizer", "best_fitness", "ema", "updates")


def _chosen_model(ckpt: dict) -> nn.Module:
    """The EMA weights when the checkpoint has them (they validate better), else the raw model."""
    return ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]


def _set_inplace(model: nn.Module, inplace: bool) -> None:
    """Apply the caller's inplace choice to every layer that has one, and patch old-torch Upsample pickles."""
    for layer in model.modules():
        if hasattr(layer, "inplace"):
            layer.inplace = inplace
        elif isinstance(layer, nn.Upsample) and not hasattr(layer, "recompute_scale_factor"):
            layer.recompute_scale_factor = None  # attribute missing in modules pickled by old torch versions


def _prepare_loaded(ckpt: dict, weight: str, device, inplace: bool, fuse: bool) -> nn.Module:
    """The checkpoint's model (EMA when present) in float32 eval mode, with args, pt_path, task and stride set."""
    saved_args = {**DEFAULT_CFG_DICT, **dict(ckpt.get("train_args") or {})}
    model = _chosen_model(ckpt).to(device).float()
    model.args = {k: v for k, v in saved_args.items() if k in DEFAULT_CFG_KEYS}
    model.pt_path, model.task = weight, "detect"
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([_DEFAULT_STRIDE])
    if fuse and hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    model = model.eval()
    _set_inplace(model, inplace)
    return model


def attempt_load_one_weight(
    weight: str | Path,
    device=None,
    inplace: bool = True,
    fuse: bool = False,
) -> tuple[nn.Module, dict]:
    """(model, checkpoint dict) from one checkpoint file; the EMA weights are used when present."""
    ckpt, path = torch_safe_load(weight)
    return _prepare_loaded(ckpt, path, device, inplace, fuse), ckpt


def attempt_load_weights(weights, device=None, inplace: bool = True, fuse: bool = False) -> nn.Module:
    """One model for one checkpoint, an Ensemble for a list of several (they must share class names)."""
    paths = list(weights) if isinstance(weights, (list, tuple)) else [weights]
    members = [attempt_load_one_weight(w, device, inplace, fuse)[0] for w in paths]
    if len(members) == 1:
        return members[0]
    lead = members[0]
    if any(m.names != lead.names for m in members[1:]):
        raise ValueError(
            f"models in an ensemble must share class names; got {[len(m.names) for m in members]} classes for {paths}"
        )
    from ultralytics.nn.tasks import Ensemble

    ensemble = Ensemble(members)
    for attr in ("names", "nc", "yaml", "args"):
        setattr(ensemble, attr, getattr(lead, attr, None))
    coarsest = max(range(len(members)), key=lambda k: float(members[k].stride.max()))
    ensemble.stride = members[coarsest].stride
    LOGGER.info(f"{colorstr('Ensemble')} created with {weights}")
    return ensemble


def fp16_model_copy(model: nn.Module) -> nn.Module:
    """A half-precision deep copy of ``model`` for writing into a checkpoint; ``model`` itself is untouched.

    fp16 halves the file; loading converts back to float32.
    """
    return deepcopy(model).half()


def convert_optimizer_state_dict_to_fp16(state_dict: dict) -> dict:
    """Halve the float32 tensors of an optimizer state (not the step counters) to shrink checkpoints."""
    for slots in state_dict["state"].values():
        halved = {
            name: value.half()
            for name, value in slots.items()
            if name != "step" and isinstance(value, torch.Tensor) and value.dtype is torch.float32
        }
        slots.update(halved)
    return state_dict


def _release_model(model: nn.Module) -> nn.Module:
    """Prepare a model for an inference checkpoint in place: plain-dict args, no criterion, frozen fp16."""
    if hasattr(model, "args"):
        model.args = dict(model.args)  # a namespace would tie the file to this package's class
    if hasattr(model, "criterion"):
        model.criterion = None
    return model.half().requires_grad_(False)


def strip_optimizer(f: str | Path = "best.pt", s: str = "", updates: dict | None = None) -> dict:
    """Turn a training checkpoint into a light inference one: EMA as the model, fp16, no optimizer.

    Writes to `s` when given, else overwrites `f`. Returns the new checkpoint dict.
    """
    ckpt, _ = torch_safe_load(f)
    if "model" not in ckpt and "ema" not in ckpt:
        LOGGER.info(f"Skipping {f}: it holds neither 'model' nor 'ema', so it is not an Ultralytics checkpoint.")
        return {}
    ckpt["model"] = _release_model(_chosen_model(ckpt))
    train_args = dict(ckpt.get("train_args", {}))
    ckpt.update(dict.fromkeys(_TRAINING_ONLY), epoch=-1, train_args=train_args)
    ckpt.update(updates or {})
    target = s or f
    atomic_save(ckpt, target)
    size_mb = os.path.getsize(target) / 1e6
    saved_as = f" saved as {s}," if s else ""
    LOGGER.info(f"Optimizer stripped from {f},{saved_as} {size_mb:.1f}MB")
    return ckpt


# Temporary files are hidden (dot) files beside their target: `.last.pt.tmp<pid>`.
_TMP_PREFIX = "."
_STALE_NAME = re.compile(r"\..+\.tmp\d+")


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` is always either the old file or the complete new one.

    The bytes go to a temporary file in the same folder (a rename is atomic only within one file
    system), are flushed and fsync'ed to the disk, then renamed over `path`; finally the folder is
    fsync'ed so that the rename itself survives a power cut. If anything fails or the process is
    interrupted, `path` keeps its old content and the temporary file is removed; a temporary file a
    killed process left behind in the folder is removed by the next successful write there.
    """
    path = Path(path)
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.tmp{os.getpid()}")
    try:
        _write_durably(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    _remove_stale_temporaries(path.parent)


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files that writers killed mid-write left in `folder` (`.<name>.tmp<pid>`)."""
    for stale in folder.glob(f"{_TMP_PREFIX}*.tmp*"):
        if _STALE_NAME.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


def _write_durably(file: Path, data: bytes) -> None:
    """`data` into `file`, on the disk (not only in the OS cache) when this returns."""
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    """fsync a folder so that renames in it are durable; Windows cannot open folders and has no need."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj, path: str | Path) -> None:
    """torch.save `obj` to `path` through `write_atomic`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue())
