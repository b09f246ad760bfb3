"""The user-facing model wrapper: one object that builds or loads a network and trains, validates,
predicts with and exports it.

What is task specific (trainer, validator, predictor, network class) comes from the subclass's
`task_map`; this file holds how each mode assembles its arguments and hands over to that engine.
Each mode layers its arguments the same way, later layers winning:

    the model's remembered overrides  <  the mode's own defaults  <  the caller's kwargs

and, except for predict, `mode=` is forced last.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultralytics.cfg import get_cfg, get_save_dir
from ultralytics.engine.release import release_stamp
from ultralytics.nn.autobackend import default_class_names, read_embedded_metadata
from ultralytics.nn.checkpoints import atomic_save, attempt_load_one_weight, fp16_model_copy
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, RANK, yaml_load
from ultralytics.utils.callbacks import base as callbacks
from ultralytics.utils.checks import check_file, check_yaml

# The dataset used when `train` or `val` gets no data=: the embedded synthetic set (works offline).
DEFAULT_DATA = "shapes.yaml"

# Training arguments a loaded checkpoint passes on to later calls; the rest describe the old run only.
_CARRIED_CKPT_ARGS = frozenset({"imgsz", "data", "task", "single_cls"})

_MODEL_YAML_SUFFIXES = frozenset({".yaml", ".yml"})


def _launched_as_cli_predict(argv: list[str]) -> bool:
    """True under `yolo predict ...` or `yolo track ...` (or `ultralytics ...`): the CLI saves results by default
    and logs more."""
    if not argv or Path(argv[0]).name not in {"yolo", "ultralytics"}:
        return False
    return any(word in argv for word in ("predict", "mode=predict", "track", "mode=track"))


def _layer(*layers: dict) -> dict:
    """Merge argument dicts into a new one, later layers winning."""
    merged: dict = {}
    for layer in layers:
        merged.update(layer)
    return merged


def _needs_torch_model(method: Callable) -> Callable:
    """Guard a method that works on an nn.Module only: an exported file raises a TypeError first."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        self._check_is_pytorch_model()
        return method(self, *args, **kwargs)

    return guarded


def _warn_default_data() -> str:
    LOGGER.warning(f"WARNING ⚠️ 'data' argument is missing. Using default 'data={DEFAULT_DATA}'.")
    return DEFAULT_DATA


class Model(nn.Module):
    """Wraps a network built from a yaml file or loaded from a checkpoint / exported file.

    Args:
        model: a model yaml ('rtdetr-l-FocalModulation.yaml'), a checkpoint ('best.pt'), or an
            exported file ('best.onnx', 'best.torchscript') for prediction.
        task: the task; only 'detect' exists here.
        verbose: print the layer table when building from yaml.
    """

    def __init__(self, model: str | Path = "rtdetr-l.yaml", task: str | None = None, verbose: bool = False):
        super().__init__()
        self.callbacks = callbacks.get_default_callbacks()
        # Engines are built by the modes on first use; metrics are the last train/val result.
        self.predictor = self.trainer = self.metrics = None
        # The network (nn.Module, or the path of an exported file) and where it came from.
        self.model = self.cfg = self.ckpt_path = self.model_name = None
        self.task = task
        self.ckpt: dict = {}  # the checkpoint the weights came from; {} when built from yaml
        self.overrides: dict = {}  # arguments every later mode starts from
        source = str(model).strip()
        if not source:
            raise ValueError("model must be a model yaml, a .pt checkpoint or an exported model file, got ''")
        if Path(source).suffix in _MODEL_YAML_SUFFIXES:
            self._new(source, task=task, verbose=verbose)
        else:
            self._load(source, task=task)
        # nn.Module's own `training` flag would shadow the wrapped network's.
        del self.training

    def __call__(self, source=None, stream: bool = False, **kwargs):
        """`model(source)` is `model.predict(source)`."""
        return self.predict(source, stream, **kwargs)

    def __getattr__(self, name: str):
        # Reached only for names the wrapper lacks: those are looked up on the wrapped network
        # (model.stride, model.yaml, ...). nn.Module keeps a registered `model` in _modules.
        # A property of ours that raises AttributeError ends up here too.
        if name == "model":
            return self._modules["model"]
        network = self.model
        if isinstance(network, str):
            raise AttributeError(
                f"'{type(self).__name__}' has no attribute '{name}' yet: model='{network}' is an exported file, "
                f"whose settings are known once it has been used for prediction (its class names are in .names)"
            )
        return getattr(network, name)

    # ------------------------------------------------------------------------------------------
    # Building and loading
    # ------------------------------------------------------------------------------------------
    def _new(self, cfg: str, task: str | None = None, model=None, verbose: bool = False) -> None:
        """Build a fresh network from the model yaml `cfg`."""
        architecture = yaml_model_load(cfg)
        self.cfg = self.model_name = cfg
        self.task = task or "detect"
        network_class = model or self._smart_load("model")
        network = network_class(architecture, verbose=verbose and RANK == -1)  # the table prints once under DDP
        self._remember_source(cfg)
        network.args = dict(DEFAULT_CFG_DICT, **self.overrides)
        network.task = self.task
        self.model = network

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a .pt checkpoint as a network, or keep the path of an exported file for the backend."""
        is_checkpoint = Path(weights).suffix == ".pt"
        source = weights if is_checkpoint else check_file(weights)
        if is_checkpoint:
            self._adopt_checkpoint(source)
        else:
            # AutoBackend opens the file when predicting or validating; nothing is loaded now.
            self.model, self.ckpt, self.ckpt_path = source, None, source
            self.task = task or "detect"
        self._remember_source(source)
        self.model_name = source

    def _adopt_checkpoint(self, file: str | Path) -> None:
        """Take network, checkpoint dict, task and carried-over args from the checkpoint `file`."""
        network, checkpoint = attempt_load_one_weight(file)
        carried = self._reset_ckpt_args(network.args)
        network.args = carried
        self.model, self.ckpt, self.overrides = network, checkpoint, carried
        self.task = carried.get("task", "detect")
        self.ckpt_path = network.pt_path

    def _remember_source(self, source: str) -> None:
        self.overrides.update(model=source, task=self.task)

    @staticmethod
    def _reset_ckpt_args(args: dict) -> dict:
        """The training args that should carry over into later calls (a new dict)."""
        return {key: value for key, value in args.items() if key in _CARRIED_CKPT_ARGS}

    def _check_is_pytorch_model(self) -> None:
        """Raise unless the wrapped model is an nn.Module (exported files only predict and validate)."""
        if isinstance(self.model, nn.Module):
            return
        raise TypeError(
            f"model='{self.model}' is an exported file; this operation needs a PyTorch model. Exported models "
            f"support only predict and val: build from a .yaml or load a .pt checkpoint for train, export, "
            f"fuse, info or load."
        )

    def _smart_load(self, key: str):
        """The class registered under `key` ('model', 'trainer', 'validator', 'predictor') for this task."""
        engines = self.task_map.get(self.task)
        if engines is None or key not in engines:
            raise NotImplementedError(
                f"'{type(self).__name__}' has no '{key}' for task '{self.task}'; supported tasks: {list(self.task_map)}"
            )
        return engines[key]

    @property
    def task_map(self) -> dict:
        """{task: {'model', 'trainer', 'validator', 'predictor': class}}; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define task_map")

    # ------------------------------------------------------------------------------------------
    # Inspection and weights
    # ------------------------------------------------------------------------------------------
    @_needs_torch_model
    def info(self, detailed: bool = False, verbose: bool = True):
        """Log the model summary (layers, parameters, GFLOPs) and return its numbers."""
        return self.model.info(detailed=detailed, verbose=verbose)

    @_needs_torch_model
    def fuse(self):
        """Fold batch-norm layers into the preceding convolutions, for faster inference."""
        self.model.fuse()
        return self

    @_needs_torch_model
    def load(self, weights: str | Path | nn.Module = "rtdetr-l.pt"):
        """Copy every matching tensor from a checkpoint (or model) into this model; logs how many."""
        source = weights
        if isinstance(weights, (str, Path)):
            self.overrides["pretrained"] = str(weights)
            source, self.ckpt = attempt_load_one_weight(weights)
        self.model.load(source)
        return self

    @_needs_torch_model
    def save(self, filename: str | Path = "saved_model.pt") -> None:
        """Write the model as a checkpoint in the training checkpoint layout.

        The checkpoint it came from (if any) is kept and overlaid with an fp16 copy of the network
        (half the file size; loading converts back to fp32) and the release stamp.
        """
        checkpoint = dict(self.ckpt or {})
        checkpoint.update(model=fp16_model_copy(self.model), **release_stamp())
        atomic_save(checkpoint, filename)

    @_needs_torch_model
    def reset_weights(self):
        """Re-initialise every layer that can reset itself and make all parameters trainable."""
        resettable = (m for m in self.model.modules() if hasattr(m, "reset_parameters"))
        for module in resettable:
            module.reset_parameters()
        self.model.requires_grad_(True)
        return self

    @property
    def names(self) -> dict[int, str]:
        """Class names {index: name}.

        For an exported file they come from the loaded backend once predicting has started, and before
        that from the metadata the exporter embedded in the file (placeholder names when it has none,
        as the backend would use).
        """
        if isinstance(self.model, nn.Module):
            return self.model.names
        if self.predictor is not None:
            return self.predictor.model.names
        embedded = read_embedded_metadata(self.model).get("names")
        return embedded if embedded is not None else default_class_names(self.overrides.get("data"))

    @property
    def device(self) -> torch.device | None:
        """Where the network's parameters live; None for an exported file."""
        if not isinstance(self.model, nn.Module):
            return None
        return next(self.model.parameters()).device

    @property
    def transforms(self) -> Any:
        """The network's own preprocessing transforms, or None (RT-DETR networks define none)."""
        return getattr(self.model, "transforms", None) if isinstance(self.model, nn.Module) else None

    def add_callback(self, event: str, func: Callable) -> None:
        """Run `func(engine)` on `event` in every later train/val/predict/export."""
        self.callbacks[event].append(func)

    def clear_callback(self, event: str) -> None:
        """Drop every callback registered for `event`."""
        self.callbacks[event] = []

    def reset_callbacks(self) -> None:
        """Forget every added callback: each event is left with its default handlers only.

        The registry is changed in place, so engines already built with it see the reset too.
        """
        fresh = callbacks.get_default_callbacks()
        for event in list(self.callbacks):
            self.callbacks[event] = fresh[event]

    def eval(self):
        """Switch the wrapped network to inference behaviour (dropout off, batch-norm frozen)."""
        self.model.eval()
        return self

    @_needs_torch_model
    def _apply(self, fn):
        # .to()/.cuda()/.half() act on the wrapped network and drop a predictor built for the old device.
        moved = super()._apply(fn)
        moved.predictor = None
        moved.overrides["device"] = moved.device
        return moved

    # ------------------------------------------------------------------------------------------
    # Modes
    # ------------------------------------------------------------------------------------------
    def predict(self, source=None, stream: bool = False, predictor=None, **kwargs):
        """Run detection on images, folders, globs, videos, arrays or tensors; see BasePredictor."""
        if source is None:
            raise ValueError(
                "predict needs a source: an image or video path, a folder, a glob, a list of paths, "
                "a numpy BGR array, a PIL image or a (B, 3, H, W) float tensor"
            )
        from_cli = _launched_as_cli_predict(sys.argv)
        own = {"conf": 0.25, "batch": 1, "save": from_cli, "mode": "predict"}
        args = _layer(self.overrides, own, kwargs)
        if self.predictor:
            self._refresh_predictor(args)
        else:
            engine_class = predictor or self._smart_load("predictor")
            self.predictor = engine_class(overrides=args, _callbacks=self.callbacks)
            self.predictor.setup_model(model=self.model, verbose=from_cli)
        return self.predictor(source=source, stream=stream)

    def track(self, source=None, stream: bool = False, persist: bool = False, **kwargs):
        """Detect and track objects over a video, stream or sequence of frames; see ultralytics/trackers.

        Each Results' `boxes.id` holds the track ids. `tracker=` names the tracker yaml (botsort.yaml or
        bytetrack.yaml); `persist=True` keeps the tracks from one call to the next, for feeding frames one
        at a time. Unlike predict, conf defaults to 0.1 (low-score boxes feed ByteTrack's second stage)
        and batch to 1.
        """
        from ultralytics.trackers import register_tracker

        register_tracker(self, persist)
        own = {"conf": kwargs.get("conf") or 0.1, "batch": kwargs.get("batch") or 1, "mode": "track"}
        return self.predict(source=source, stream=stream, **{**kwargs, **own})

    @_needs_torch_model
    def embed(self, source=None, stream: bool = False, **kwargs) -> list[torch.Tensor]:
        """One pooled feature vector per image: the listed layers' outputs averaged over H and W, concatenated.

        embed= lists layer indices (default: the last layer before the decoder). Returns a list of (C,)
        tensors, or a generator of them with stream=True. Later predict calls give Results again.

            vectors = RTDETR("best.pt").embed("images/", embed=[10, 11])
        """
        kwargs["embed"] = kwargs.get("embed") or [len(self.model.model) - 2]
        vectors = self.predict(source, stream, **kwargs)
        if stream:
            return self._then_stop_embedding(vectors)
        self.predictor.args.embed = None
        return vectors

    def _then_stop_embedding(self, vectors):
        # A stream is consumed later; its predictor stops embedding once the stream is exhausted or dropped.
        try:
            yield from vectors
        finally:
            self.predictor.args.embed = None

    def _refresh_predictor(self, args: dict) -> None:
        """Reuse the loaded predictor with new arguments; a new project/name means a new run folder."""
        engine = self.predictor
        engine.args = get_cfg(engine.args, args)
        if {"project", "name"} & args.keys():
            engine.save_dir = get_save_dir(engine.args)

    def val(self, validator=None, **kwargs):
        """Validate on a dataset split; returns the metrics object (box.map, box.map50, ...)."""
        args = _layer(self.overrides, {"rect": True}, kwargs, {"mode": "val"})
        args["data"] = args.get("data") or _warn_default_data()
        engine_class = validator or self._smart_load("validator")
        engine = engine_class(args=args, _callbacks=self.callbacks)
        engine(model=self.model)
        self.metrics = engine.metrics
        return engine.metrics

    @_needs_torch_model
    def train(self, trainer=None, **kwargs):
        """Train on a dataset yaml; the best weights are loaded back into this object afterwards."""
        args = self._train_args(kwargs)
        engine_class = trainer or self._smart_load("trainer")
        engine = engine_class(overrides=args, _callbacks=self.callbacks)
        self.trainer = engine
        resuming = bool(args.get("resume"))
        if not resuming:
            # Start from our weights when they came from a checkpoint, from the yaml otherwise.
            engine.model = engine.get_model(weights=self.model if self.ckpt else None, cfg=self.model.yaml)
            self.model = engine.model
        engine.train()
        if RANK in {-1, 0}:  # only the main process has the final weights and metrics
            self._adopt_trained_weights()
        return self.metrics

    def _train_args(self, kwargs: dict) -> dict:
        """Training arguments: a cfg= yaml replaces the remembered overrides; resume points at our checkpoint."""
        cfg_file = kwargs.get("cfg")
        base = yaml_load(check_yaml(cfg_file)) if cfg_file else self.overrides
        data = base.get("data") or DEFAULT_CFG_DICT["data"]
        if not (data or kwargs.get("data")):
            data = _warn_default_data()
        own = {"data": data, "model": self.overrides["model"], "task": self.task}
        args = _layer(base, own, kwargs, {"mode": "train"})
        if args.get("resume"):
            args["resume"] = self.ckpt_path  # resume=True means: continue the run this checkpoint came from
        return args

    def _adopt_trained_weights(self) -> None:
        """Reload best.pt (last.pt when no best was written) and take over its args and metrics."""
        run = self.trainer
        network, self.ckpt = attempt_load_one_weight(run.best if run.best.exists() else run.last)
        self.model, self.overrides = network, network.args
        self.metrics = getattr(run.validator, "metrics", None)

    @_needs_torch_model
    def export(self, **kwargs) -> str:
        """Export to 'torchscript' or 'onnx'; returns the exported file's path."""
        from ultralytics.engine.exporter import Exporter

        # Export at the size the network was trained at, on CPU, one image per batch, unless told otherwise.
        own = {"imgsz": self.model.args["imgsz"], "batch": 1, "data": None, "device": None, "verbose": False}
        args = _layer(self.overrides, own, kwargs, {"mode": "export"})
        exporter = Exporter(overrides=args, _callbacks=self.callbacks)
        return exporter(model=self.model)

    @_needs_torch_model
    def benchmark(self, **kwargs) -> Any:
        """Export to every format, validate and time each; returns upstream's table (see utils/benchmarks.py).

        Keywords: data, imgsz, half, int8, device, verbose, format; imgsz defaults to the training size.
        """
        from ultralytics.utils.benchmarks import benchmark

        args = _layer(DEFAULT_CFG_DICT, self.model.args, {"verbose": False}, kwargs, {"mode": "benchmark"})
        return benchmark(
            model=self,
            data=kwargs.get("data"),
            imgsz=args["imgsz"],
            half=args["half"],
            int8=args["int8"],
            device=args["device"] or "cpu",
            verbose=args["verbose"],
            format=kwargs.get("format") or "",
        )

    @_needs_torch_model
    def tune(self, use_ray: bool = False, iterations: int = 10, *args, **kwargs) -> dict:
        """Search training hyperparameters by mutation (see engine/tuner.py); returns the best ones found.

        Each of the `iterations` trainings uses this model's trainer (RT-DETR's) with the mutated values.
        """
        if use_ray:
            raise ValueError("use_ray=True (Ray Tune) is not supported here; use the built-in search, use_ray=False")
        from ultralytics.engine.tuner import Tuner

        tune_args = _layer(self.overrides, kwargs, {"mode": "train"})
        tune_args["data"] = tune_args.get("data") or _warn_default_data()
        tuner = Tuner(args=tune_args, _callbacks=self.callbacks)
        return tuner(model=self, iterations=iterations)
