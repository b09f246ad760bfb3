"""The user-facing model wrapper: one object that builds or loads a model and trains, validates,
predicts with and exports it, as `ultralytics.engine.model.Model` does upstream.

Task-specific classes (trainer, validator, predictor, network) come from the subclass's
`task_map`, so this file holds only the shared argument handling.
"""

from __future__ import annotations

import sys
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ultralytics.cfg import get_cfg, get_save_dir
from ultralytics.nn.tasks import attempt_load_one_weight, yaml_model_load
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, RANK, yaml_load
from ultralytics.utils.callbacks import base as callbacks
from ultralytics.utils.checks import check_file, check_yaml

# The dataset used when `train` or `val` gets no data=: the embedded synthetic set (works offline).
DEFAULT_DATA = "shapes.yaml"


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
        self.predictor = None
        self.model = None
        self.trainer = None
        self.ckpt = {}
        self.cfg = None
        self.ckpt_path = None
        self.overrides = {}
        self.metrics = None
        self.task = task
        self.model_name = None
        model = str(model).strip()
        if not model:
            raise ValueError("model must be a model yaml, a .pt checkpoint or an exported model file, got ''")
        if Path(model).suffix in {".yaml", ".yml"}:
            self._new(model, task=task, verbose=verbose)
        else:
            self._load(model, task=task)
        # nn.Module's own `training` flag would shadow the wrapped network's.
        del self.training

    def __call__(self, source=None, stream: bool = False, **kwargs):
        return self.predict(source, stream, **kwargs)

    def __getattr__(self, name: str):
        # Anything the wrapper lacks is looked up on the wrapped network (e.g. model.names, model.stride).
        return self._modules["model"] if name == "model" else getattr(self.model, name)

    # ------------------------------------------------------------------------------------------
    # Building and loading
    # ------------------------------------------------------------------------------------------
    def _new(self, cfg: str, task: str | None = None, model=None, verbose: bool = False) -> None:
        cfg_dict = yaml_model_load(cfg)
        self.cfg = cfg
        self.task = task or "detect"
        self.model = (model or self._smart_load("model"))(cfg_dict, verbose=verbose and RANK == -1)
        self.overrides["model"] = self.cfg
        self.overrides["task"] = self.task
        self.model.args = {**DEFAULT_CFG_DICT, **self.overrides}
        self.model.task = self.task
        self.model_name = cfg

    def _load(self, weights: str, task: str | None = None) -> None:
        if Path(weights).suffix == ".pt":
            self.model, self.ckpt = attempt_load_one_weight(weights)
            self.task = self.model.args.get("task", "detect")
            self.overrides = self.model.args = self._reset_ckpt_args(self.model.args)
            self.ckpt_path = self.model.pt_path
        else:
            weights = check_file(weights)
            self.model, self.ckpt = weights, None
            self.task = task or "detect"
            self.ckpt_path = weights
        self.overrides["model"] = weights
        self.overrides["task"] = self.task
        self.model_name = weights

    @staticmethod
    def _reset_ckpt_args(args: dict) -> dict:
        """Keep only the training args that should carry over into later calls."""
        include = {"imgsz", "data", "task", "single_cls"}
        return {k: v for k, v in args.items() if k in include}

    def _check_is_pytorch_model(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TypeError(
                f"model='{self.model}' is an exported file; this operation needs a PyTorch model. Exported models "
                f"support only predict and val: build from a .yaml or load a .pt checkpoint for train, export, "
                f"fuse, info or load."
            )

    def _smart_load(self, key: str):
        try:
            return self.task_map[self.task][key]
        except KeyError as e:
            raise NotImplementedError(
                f"'{type(self).__name__}' has no '{key}' for task '{self.task}'; supported tasks: {list(self.task_map)}"
            ) from e

    @property
    def task_map(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define task_map")

    # ------------------------------------------------------------------------------------------
    # Inspection
    # ------------------------------------------------------------------------------------------
    def info(self, detailed: bool = False, verbose: bool = True):
        self._check_is_pytorch_model()
        return self.model.info(detailed=detailed, verbose=verbose)

    def fuse(self):
        self._check_is_pytorch_model()
        self.model.fuse()
        return self

    def load(self, weights: str | Path | nn.Module = "rtdetr-l.pt"):
        """Copy every matching tensor from a checkpoint (or model) into this model; logs how many."""
        self._check_is_pytorch_model()
        if isinstance(weights, (str, Path)):
            self.overrides["pretrained"] = str(weights)
            weights, self.ckpt = attempt_load_one_weight(weights)
        self.model.load(weights)
        return self

    def save(self, filename: str | Path = "saved_model.pt") -> None:
        """Write the model as a checkpoint in the training checkpoint layout."""
        self._check_is_pytorch_model()
        from datetime import datetime

        from ultralytics import __version__

        updates = {
            "model": deepcopy(self.model).half(),  # fp16 halves the file; loading converts back to fp32
            "date": datetime.now().isoformat(),
            "version": __version__,
            "license": "AGPL-3.0 License (https://ultralytics.com/license)",
            "docs": "https://docs.ultralytics.com",
        }
        torch.save({**(self.ckpt or {}), **updates}, filename)

    @property
    def names(self) -> dict[int, str]:
        if isinstance(self.model, nn.Module):
            return self.model.names
        if self.predictor is None:
            raise AttributeError(f"class names of '{self.model}' are known once it has been used for prediction")
        return self.predictor.model.names

    @property
    def device(self) -> torch.device | None:
        return next(self.model.parameters()).device if isinstance(self.model, nn.Module) else None

    def add_callback(self, event: str, func) -> None:
        self.callbacks[event].append(func)

    def clear_callback(self, event: str) -> None:
        self.callbacks[event] = []

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
        argv = sys.argv
        is_cli = bool(argv) and Path(argv[0]).name in {"yolo", "ultralytics"} and any(
            x in argv for x in ("predict", "mode=predict")
        )
        custom = {"conf": 0.25, "batch": 1, "save": is_cli, "mode": "predict"}
        args = {**self.overrides, **custom, **kwargs}
        if not self.predictor:
            self.predictor = (predictor or self._smart_load("predictor"))(overrides=args, _callbacks=self.callbacks)
            self.predictor.setup_model(model=self.model, verbose=is_cli)
        else:
            self.predictor.args = get_cfg(self.predictor.args, args)
            if "project" in args or "name" in args:
                self.predictor.save_dir = get_save_dir(self.predictor.args)
        return self.predictor(source=source, stream=stream)

    def val(self, validator=None, **kwargs):
        """Validate on a dataset split; returns the metrics object (box.map, box.map50, ...)."""
        custom = {"rect": True}
        args = {**self.overrides, **custom, **kwargs, "mode": "val"}
        if not args.get("data"):
            args["data"] = DEFAULT_DATA
            LOGGER.warning(f"WARNING ⚠️ 'data' argument is missing. Using default 'data={DEFAULT_DATA}'.")
        validator = (validator or self._smart_load("validator"))(args=args, _callbacks=self.callbacks)
        validator(model=self.model)
        self.metrics = validator.metrics
        return validator.metrics

    def train(self, trainer=None, **kwargs):
        """Train on a dataset yaml; the best weights are loaded back into this object afterwards."""
        self._check_is_pytorch_model()
        overrides = yaml_load(check_yaml(kwargs["cfg"])) if kwargs.get("cfg") else self.overrides
        data = overrides.get("data") or DEFAULT_CFG_DICT["data"]
        if not data and not kwargs.get("data"):
            data = DEFAULT_DATA
            LOGGER.warning(f"WARNING ⚠️ 'data' argument is missing. Using default 'data={DEFAULT_DATA}'.")
        custom = {"data": data, "model": self.overrides["model"], "task": self.task}
        args = {**overrides, **custom, **kwargs, "mode": "train"}
        if args.get("resume"):
            args["resume"] = self.ckpt_path
        self.trainer = (trainer or self._smart_load("trainer"))(overrides=args, _callbacks=self.callbacks)
        if not args.get("resume"):
            self.trainer.model = self.trainer.get_model(weights=self.model if self.ckpt else None, cfg=self.model.yaml)
            self.model = self.trainer.model
        self.trainer.train()
        if RANK in {-1, 0}:
            ckpt = self.trainer.best if self.trainer.best.exists() else self.trainer.last
            self.model, self.ckpt = attempt_load_one_weight(ckpt)
            self.overrides = self.model.args
            self.metrics = getattr(self.trainer.validator, "metrics", None)
        return self.metrics

    def export(self, **kwargs) -> str:
        """Export to 'torchscript' or 'onnx'; returns the exported file's path."""
        self._check_is_pytorch_model()
        from ultralytics.engine.exporter import Exporter

        custom = {"imgsz": self.model.args["imgsz"], "batch": 1, "data": None, "device": None, "verbose": False}
        args = {**self.overrides, **custom, **kwargs, "mode": "export"}
        return Exporter(overrides=args, _callbacks=self.callbacks)(model=self.model)

    def eval(self):
        self.model.eval()
        return self

    def _apply(self, fn):
        # .to()/.cuda()/.half() act on the wrapped network and drop a predictor built for the old device.
        self._check_is_pytorch_model()
        self = super()._apply(fn)
        self.predictor = None
        self.overrides["device"] = self.device
        return self

    def reset_weights(self):
        """Re-initialise every layer that can reset itself and make all parameters trainable."""
        self._check_is_pytorch_model()
        for m in self.model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for p in self.model.parameters():
            p.requires_grad = True
        return self

    def transforms(self) -> Any:
        return getattr(self.model, "transforms", None)
