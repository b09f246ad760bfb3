"""Export a trained model to TorchScript or ONNX with its metadata embedded.

    yolo export model=runs/detect/train/weights/best.pt format=onnx imgsz=640
    RTDETR("best.pt").export(format="torchscript")

Format       `format=`      File                Metadata
PyTorch      -              best.pt             (the checkpoint itself)
TorchScript  torchscript    best.torchscript    `config.txt` extra file, JSON
ONNX         onnx           best.onnx           `metadata_props`, one string per key

The exported graph returns y only: (batch, 300, 4 + nc), normalised xywh then class scores.
"""

from __future__ import annotations

import difflib
import inspect
import json
import time
import warnings
from copy import deepcopy
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ultralytics import __version__
from ultralytics.engine.component import EngineComponent
from ultralytics.nn.autobackend import check_class_names, default_class_names
from ultralytics.nn.modules.head import RTDETRDecoder
from ultralytics.utils import DEFAULT_CFG, LOGGER, colorstr
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.files import file_size
from ultralytics.utils.ops import Profile
from ultralytics.utils.torch_utils import select_device, smart_inference_mode

# Newest opset the TorchScript-based ONNX exporter of the oldest torch we support writes reliably.
_FALLBACK_OPSET = 17


def export_formats() -> dict[str, tuple]:
    """The export formats this package writes, as columns: Format, Argument, Suffix, CPU, GPU, Arguments."""
    rows = [
        ["PyTorch", "-", ".pt", True, True, []],
        ["TorchScript", "torchscript", ".torchscript", True, True, ["batch", "optimize"]],
        ["ONNX", "onnx", ".onnx", True, True, ["batch", "dynamic", "half", "opset", "simplify"]],
    ]
    return dict(zip(["Format", "Argument", "Suffix", "CPU", "GPU", "Arguments"], zip(*rows)))


def get_latest_opset() -> int:
    """The newest opset torch's TorchScript-based exporter supports, minus one (upstream's stable choice)."""
    try:
        from torch.onnx import _constants
    except ImportError:
        return _FALLBACK_OPSET
    newest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or getattr(
        _constants, "ONNX_MAX_OPSET", _FALLBACK_OPSET + 1
    )
    return int(newest) - 1


def try_export(inner_func: Callable) -> Callable:
    """Time an export step and log its success (file and size) or its failure before re-raising."""
    inner_args = getattr(inner_func, "__defaults__", None) or ()
    prefix = inner_args[0] if inner_args else ""

    @wraps(inner_func)
    def outer_func(*args, **kwargs):
        dt = Profile()
        try:
            with dt:
                f, model = inner_func(*args, **kwargs)
            LOGGER.info(f"{prefix} export success ✅ {dt.t:.1f}s, saved as '{f}' ({file_size(f):.1f} MB)")
            return f, model
        except Exception as e:  # logged with the format's prefix, then raised unchanged
            LOGGER.info(f"{prefix} export failure ❌ {dt.t:.1f}s: {e}")
            raise

    return outer_func


class Exporter(EngineComponent):
    """Export a detection model; `Exporter(overrides={"format": "onnx"})(model)` returns the file path.

    Arguments used (from the cfg): format, imgsz, batch, device, half, dynamic, simplify, opset,
    optimize, int8.
    """

    def __init__(
        self,
        cfg: str | Path | dict = DEFAULT_CFG,
        overrides: dict[str, Any] | None = None,
        _callbacks: dict[str, list[Callable]] | None = None,
    ):
        self._configure(cfg, overrides, _callbacks)

    @smart_inference_mode()
    def __call__(self, model: nn.Module | None = None) -> str:
        """Export `model` to args.format and return the path of the written file."""
        if model is None:
            raise ValueError("Exporter needs a model: Exporter(overrides=...)(model), or use RTDETR(...).export()")
        self.run_callbacks("on_export_start")
        t = time.time()
        fmt = self._check_format(str(self.args.format or "").lower())
        jit = fmt == "torchscript"

        self.device = select_device("cpu" if self.args.device is None else self.args.device)
        if not hasattr(model, "names"):
            model.names = default_class_names()
        model.names = check_class_names(model.names)
        if self.args.int8:
            raise ValueError("int8=True quantisation is not supported for TorchScript or ONNX export; use int8=False")
        if self.args.half and self.device.type == "cpu":
            if self.args.dynamic:
                raise ValueError("half=True is not compatible with dynamic=True; use only one of them")
            LOGGER.warning(
                f"WARNING ⚠️ half=True only compatible with GPU export, i.e. use device=0; exporting {fmt} in FP32"
            )
            self.args.half = False
        if self.args.optimize:
            raise ValueError("optimize=True (TorchScript for mobile) is not supported here; use optimize=False")
        stride = getattr(model, "stride", None)
        stride = int(torch.as_tensor(stride).max()) if stride is not None else 32
        self.imgsz = check_imgsz(self.args.imgsz, stride=stride, min_dim=2)
        batch = int(self.args.batch or 1)
        if batch < 1:
            raise ValueError(f"batch={self.args.batch} is invalid for export; use a positive batch size")

        im = torch.zeros(batch, 3, *self.imgsz).to(self.device)
        file = self._source_file(model)

        model = deepcopy(model).to(self.device)
        for p in model.parameters():
            p.requires_grad = False
        model.eval()
        model.float()
        if hasattr(model, "fuse"):
            model = model.fuse()
        for m in model.modules():
            if isinstance(m, RTDETRDecoder):
                m.dynamic = self.args.dynamic
                m.export = True  # the graph returns y only, not the training extras
                m.format = fmt

        y = None
        for _ in range(2):  # dry runs build cached anchors and catch shape errors before tracing
            y = model(im)
        if self.args.half and self.device.type != "cpu":
            im, model = im.half(), model.half()

        self.im, self.model, self.file = im, model, file
        self.output_shape = (
            tuple(y.shape) if isinstance(y, torch.Tensor) else tuple(tuple(x.shape) for x in y if torch.is_tensor(x))
        )
        yaml = getattr(model, "yaml", None) or {}
        self.pretty_name = Path(yaml.get("yaml_file", self.file)).stem
        train_args = getattr(model, "args", None)
        data = train_args.get("data") if isinstance(train_args, dict) else ""
        description = f"Ultralytics {self.pretty_name} model {f'trained on {data}' if data else ''}".rstrip()
        self.metadata = {
            "description": description,
            "author": "Ultralytics",
            "date": datetime.now().isoformat(),
            "version": __version__,
            "license": "AGPL-3.0 License (https://ultralytics.com/license)",
            "docs": "https://docs.ultralytics.com",
            "stride": stride,
            "task": getattr(model, "task", "detect"),
            "batch": batch,
            "imgsz": self.imgsz,
            "names": model.names,
        }
        source_size = f" ({file_size(file):.1f} MB)" if file.is_file() else ""
        LOGGER.info(
            f"\n{colorstr('PyTorch:')} starting from '{file}' with input shape {tuple(im.shape)} BCHW and "
            f"output shape(s) {self.output_shape}{source_size}"
        )

        f, _ = self.export_torchscript() if jit else self.export_onnx()

        imgsz = self.imgsz[0] if self.imgsz[0] == self.imgsz[1] else self.imgsz
        q = "half=True" if self.args.half else ""
        LOGGER.info(
            f"\nExport complete ({time.time() - t:.1f}s)"
            f"\nResults saved to {colorstr('bold', Path(f).parent.resolve())}"
            f"\nPredict:         yolo predict task=detect model={f} imgsz={imgsz} {q}"
            f"\nValidate:        yolo val task=detect model={f} imgsz={imgsz} data={data or 'your.yaml'} {q}"
            f"\nVisualize:       https://netron.app"
        )
        self.run_callbacks("on_export_end")
        return f

    @staticmethod
    def _check_format(fmt: str) -> str:
        """Return the format name, or raise listing the supported ones (with a close match if any)."""
        fmts = tuple(export_formats()["Argument"][1:])
        if fmt in fmts:
            return fmt
        close = difflib.get_close_matches(fmt, fmts, n=1, cutoff=0.6)
        hint = f" Did you mean format='{close[0]}'?" if close else ""
        raise ValueError(f"Invalid export format='{fmt}'. Valid formats are {fmts}.{hint}")

    @staticmethod
    def _source_file(model: nn.Module) -> Path:
        """Exported files sit next to the checkpoint (best.pt -> best.onnx), or in cwd for a yaml-built model."""
        yaml = getattr(model, "yaml", None) or {}
        file = Path(getattr(model, "pt_path", None) or getattr(model, "yaml_file", None) or yaml.get("yaml_file", ""))
        if file.suffix in {".yaml", ".yml"}:
            file = Path(file.name)
        if not file.name:
            file = Path("model.pt")
        return file

    @try_export
    def export_torchscript(self, prefix: str = colorstr("TorchScript:")) -> tuple[str, Any]:
        LOGGER.info(f"\n{prefix} starting export with torch {torch.__version__}...")
        f = self.file.with_suffix(".torchscript")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shape checks traced as constants
            warnings.simplefilter("ignore", category=FutureWarning)  # torch >= 2.9 marks torch.jit as deprecated
            ts = torch.jit.trace(self.model, self.im, strict=False)
        extra_files = {"config.txt": json.dumps(self.metadata)}
        ts.save(str(f), _extra_files=extra_files)
        return str(f), None

    @try_export
    def export_onnx(self, prefix: str = colorstr("ONNX:")) -> tuple[str, Any]:
        try:
            import onnx
        except ImportError as e:
            raise ImportError(
                "format='onnx' needs the onnx package, an optional extra: pip install onnx onnxruntime "
                "(or pip install 'ultralytics[export]')"
            ) from e
        opset_version = int(self.args.opset or get_latest_opset())
        LOGGER.info(f"\n{prefix} starting export with onnx {onnx.__version__} opset {opset_version}...")
        f = str(self.file.with_suffix(".onnx"))
        dynamic = None
        if self.args.dynamic:
            # The deformable attention splits its flattened value tensor by per-level h * w sizes, which
            # tracing records as constants, so only the batch axis can be dynamic for RT-DETR.
            dynamic = {"images": {0: "batch"}, "output0": {0: "batch"}}
            LOGGER.info(f"{prefix} dynamic=True makes the batch size dynamic; height and width stay {self.imgsz}")
        model, im = (self.model.cpu(), self.im.cpu()) if dynamic else (self.model, self.im)
        with warnings.catch_warnings():
            # torch >= 2.9 flags the TorchScript-based exporter as legacy; it is the one upstream 8.3 uses.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            # The decoder gathers top-k query indices, which are never negative.
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")
            kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(
                model,
                im,
                f,
                verbose=False,
                opset_version=opset_version,
                do_constant_folding=True,
                input_names=["images"],
                output_names=["output0"],
                dynamic_axes=dynamic,
                **kwargs,
            )
        model_onnx = onnx.load(f)
        if self.args.simplify:
            model_onnx = self._slim(model_onnx, prefix)
        for k, v in self.metadata.items():
            meta = model_onnx.metadata_props.add()
            meta.key, meta.value = k, str(v)
        onnx.save(model_onnx, f)
        return f, model_onnx

    @staticmethod
    def _slim(model_onnx: Any, prefix: str) -> Any:
        """Simplify with onnxslim when installed; a failure keeps the unsimplified graph."""
        try:
            import onnxslim
        except ImportError:
            LOGGER.info(f"{prefix} onnxslim not installed, skipping simplify (pip install onnxslim)")
            return model_onnx
        LOGGER.info(f"{prefix} slimming with onnxslim {onnxslim.__version__}...")
        try:
            return onnxslim.slim(model_onnx)
        except Exception as e:  # the simplifier is optional; the exported graph is still valid
            LOGGER.warning(f"{prefix} WARNING ⚠️ simplifier failure, keeping the unsimplified graph: {e}")
            return model_onnx
