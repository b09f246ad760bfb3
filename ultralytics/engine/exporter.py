"""Export a trained model to TorchScript, ONNX or OpenVINO with its metadata alongside.

    yolo export model=runs/detect/train/weights/best.pt format=onnx imgsz=640
    RTDETR("best.pt").export(format="torchscript")

Format       `format=`      File                Metadata
PyTorch      -              best.pt             (the checkpoint itself)
TorchScript  torchscript    best.torchscript    `config.txt` extra file, JSON
ONNX         onnx           best.onnx           `metadata_props`, one string per key
OpenVINO     openvino       best_openvino_model/ best.xml + best.bin, and `metadata.yaml` beside them

The exported graph returns y only: (batch, 300, 4 + nc), normalised xywh then class scores.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import time
import warnings
from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ultralytics.engine.component import EngineComponent
from ultralytics.engine.release import release_stamp
from ultralytics.nn.autobackend import check_class_names, default_class_names
from ultralytics.nn.modules.head import RTDETRDecoder
from ultralytics.nn.autobackend import OPENVINO_FOLDER_SUFFIX, OPENVINO_METADATA
from ultralytics.utils import DEFAULT_CFG, LOGGER, colorstr, yaml_save
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.files import file_size
from ultralytics.utils.ops import Profile
from ultralytics.utils.torch_utils import select_device, smart_inference_mode

# Newest opset the TorchScript-based ONNX exporter of the oldest torch we support writes reliably.
_FALLBACK_OPSET = 17

# (Format, Argument, Suffix, CPU, GPU, Arguments): one row per format this package writes.
_FORMAT_ROWS = (
    ("PyTorch", "-", ".pt", True, True, []),
    ("TorchScript", "torchscript", ".torchscript", True, True, ["batch", "optimize"]),
    ("ONNX", "onnx", ".onnx", True, True, ["batch", "dynamic", "half", "opset", "simplify"]),
    ("OpenVINO", "openvino", OPENVINO_FOLDER_SUFFIX, True, False, ["batch", "dynamic", "half"]),
)
_FORMAT_COLUMNS = ("Format", "Argument", "Suffix", "CPU", "GPU", "Arguments")


def export_formats() -> dict[str, tuple]:
    """The export formats this package writes, as columns: Format, Argument, Suffix, CPU, GPU, Arguments."""
    return {column: tuple(row[i] for row in _FORMAT_ROWS) for i, column in enumerate(_FORMAT_COLUMNS)}


def get_latest_opset() -> int:
    """The newest opset torch's TorchScript-based exporter supports, minus one (upstream's stable choice)."""
    try:
        from torch.onnx import _constants
    except ImportError:
        return _FALLBACK_OPSET
    for name in ("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", "ONNX_MAX_OPSET"):
        newest = getattr(_constants, name, None)
        if newest:
            return int(newest) - 1
    return _FALLBACK_OPSET


def try_export(inner_func: Callable) -> Callable:
    """Time an export step and log its success (file and size) or its failure before re-raising.

    The log prefix is the decorated method's `prefix` default, e.g. "TorchScript:".
    """
    prefix_param = inspect.signature(inner_func).parameters.get("prefix")
    label = prefix_param.default if prefix_param is not None else ""

    @wraps(inner_func)
    def timed(*args, **kwargs):
        clock = Profile()
        try:
            with clock:
                written, handle = inner_func(*args, **kwargs)
        except Exception as error:  # logged under the format's label, then raised unchanged
            LOGGER.info(f"{label} export failure ❌ {clock.t:.1f}s: {error}")
            raise
        LOGGER.info(f"{label} export success ✅ {clock.t:.1f}s, saved as '{written}' ({file_size(written):.1f} MB)")
        return written, handle

    return timed


def _check_format(fmt: str) -> str:
    """Return the format name, or raise listing the supported ones (with a close match if any)."""
    accepted = export_formats()["Argument"][1:]
    if fmt in accepted:
        return fmt
    guess = difflib.get_close_matches(fmt, accepted, n=1, cutoff=0.6)
    hint = f" Did you mean format='{guess[0]}'?" if guess else ""
    raise ValueError(f"Invalid export format='{fmt}'. Valid formats are {accepted}.{hint}")


def _source_file(model: nn.Module) -> Path:
    """Exported files sit next to the checkpoint (best.pt -> best.onnx), or in cwd for a yaml-built model."""
    spec = getattr(model, "yaml", None) or {}
    origin = getattr(model, "pt_path", None) or getattr(model, "yaml_file", None) or spec.get("yaml_file", "")
    path = Path(origin)
    if path.suffix in {".yaml", ".yml"}:
        return Path(path.name)
    return path if path.name else Path("model.pt")


def _model_stride(model: nn.Module) -> int:
    stride = getattr(model, "stride", None)
    return 32 if stride is None else int(torch.as_tensor(stride).max())


def _shapes(y: torch.Tensor | tuple | list) -> tuple:
    """Shape of the probe output, or of each tensor in it."""
    if isinstance(y, torch.Tensor):
        return tuple(y.shape)
    return tuple(tuple(t.shape) for t in y if torch.is_tensor(t))


class Exporter(EngineComponent):
    """Export a detection model; `Exporter(overrides={"format": "onnx"})(model)` returns the file path.

    Arguments used (from the cfg): format, imgsz, batch, device, half, dynamic, simplify, opset,
    optimize, int8. OpenVINO is converted on CPU, whatever the device.
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
        started = time.time()
        fmt = _check_format(str(self.args.format or "").lower())

        # 1. Settings: device, precision, input size, batch.
        self.device = select_device("cpu" if self.args.device is None else self.args.device)
        names = model.names if hasattr(model, "names") else default_class_names()  # placeholders for bare modules
        model.names = check_class_names(names)
        self._check_settings(fmt)
        stride = _model_stride(model)
        self.imgsz = check_imgsz(self.args.imgsz, stride=stride, min_dim=2)
        batch = self._batch_size()

        # 2. An inference-only copy of the model, probed with a dummy batch.
        self.file = _source_file(model)
        self.im = torch.zeros(batch, 3, *self.imgsz).to(self.device)  # (B, 3, H, W)
        self.model = self._inference_copy(model, fmt)
        probe = self._probe(fmt)
        self.output_shape = _shapes(probe)

        # 3. Metadata, then the format's own writer.
        self.metadata = self._metadata(stride, batch)
        self._log_start()
        writers = {"torchscript": self.export_torchscript, "onnx": self.export_onnx, "openvino": self.export_openvino}
        written, _ = writers[fmt]()
        self._log_finish(written, started)
        self.run_callbacks("on_export_end")
        return written

    def _check_settings(self, fmt: str) -> None:
        """Reject what no format here supports; on CPU, fall back from half to fp32 except for OpenVINO.

        OpenVINO stores half=True as fp16-compressed weights, which needs no GPU.
        """
        args = self.args
        if args.int8:
            raise ValueError(
                f"int8=True quantisation is not supported for {fmt} export here (no calibration step); use int8=False"
            )
        if args.half and self.device.type == "cpu" and fmt != "openvino":
            if args.dynamic:
                raise ValueError("half=True is not compatible with dynamic=True; use only one of them")
            LOGGER.warning(
                f"WARNING ⚠️ half=True only compatible with GPU export, i.e. use device=0; exporting {fmt} in FP32"
            )
            args.half = False
        if args.optimize:
            raise ValueError("optimize=True (TorchScript for mobile) is not supported here; use optimize=False")

    def _batch_size(self) -> int:
        size = int(self.args.batch or 1)
        if size < 1:
            raise ValueError(f"batch={self.args.batch} is invalid for export; use a positive batch size")
        return size

    def _inference_copy(self, model: nn.Module, fmt: str) -> nn.Module:
        """A frozen fp32 eval copy on self.device, fused, with the decoder set to return y only."""
        copy = deepcopy(model).to(self.device)
        copy.requires_grad_(False)
        copy.eval()
        copy.float()
        if hasattr(copy, "fuse"):
            copy = copy.fuse()
        for decoder in (m for m in copy.modules() if isinstance(m, RTDETRDecoder)):
            decoder.dynamic = self.args.dynamic
            decoder.export = True  # the graph returns y only, not the training extras
            decoder.format = fmt
        return copy

    def _probe(self, fmt: str) -> torch.Tensor | tuple:
        """Two dry runs (they build cached anchors and catch shape errors before tracing), then half if asked.

        OpenVINO converts the fp32 model and compresses the weights when saving, so it stays fp32 here.
        """
        out = None
        for _ in range(2):
            out = self.model(self.im)
        if self.args.half and self.device.type != "cpu" and fmt != "openvino":
            self.im, self.model = self.im.half(), self.model.half()
        return out

    def _training_data(self) -> str:
        train_args = getattr(self.model, "args", None)
        return train_args.get("data") if isinstance(train_args, dict) else ""

    def _metadata(self, stride: int, batch: int) -> dict[str, Any]:
        """What a reader needs to run the file: stride, task, batch, imgsz, names, plus provenance."""
        spec = getattr(self.model, "yaml", None) or {}
        self.pretty_name = Path(spec.get("yaml_file", self.file)).stem
        data = self._training_data()
        trained_on = f"trained on {data}" if data else ""
        return {
            "description": f"Ultralytics {self.pretty_name} model {trained_on}".rstrip(),
            "author": "Ultralytics",
            **release_stamp(),
            "stride": stride,
            "task": getattr(self.model, "task", "detect"),
            "batch": batch,
            "imgsz": self.imgsz,
            "names": self.model.names,
        }

    def _log_start(self) -> None:
        size = f" ({file_size(self.file):.1f} MB)" if self.file.is_file() else ""
        LOGGER.info(
            f"\n{colorstr('PyTorch:')} starting from '{self.file}' with input shape {tuple(self.im.shape)} BCHW and "
            f"output shape(s) {self.output_shape}{size}"
        )

    def _log_finish(self, written: str, started: float) -> None:
        """Where the file went and the commands that use it."""
        height, width = self.imgsz
        imgsz = height if height == width else self.imgsz
        half = "half=True" if self.args.half else ""
        data = self._training_data() or "your.yaml"
        LOGGER.info(
            f"\nExport complete ({time.time() - started:.1f}s)"
            f"\nResults saved to {colorstr('bold', Path(written).parent.resolve())}"
            f"\nPredict:         yolo predict task=detect model={written} imgsz={imgsz} {half}"
            f"\nValidate:        yolo val task=detect model={written} imgsz={imgsz} data={data} {half}"
            f"\nVisualize:       https://netron.app"
        )

    # ------------------------------------------------------------------------------------------
    # Writers: each returns (path of the written file, in-memory model or None)
    # ------------------------------------------------------------------------------------------
    @try_export
    def export_torchscript(self, prefix: str = colorstr("TorchScript:")) -> tuple[str, Any]:
        """Trace the model; the metadata travels as the JSON extra file `config.txt`."""
        LOGGER.info(f"\n{prefix} tracing with torch {torch.__version__}...")
        target = self.file.with_suffix(".torchscript")
        with warnings.catch_warnings():
            # Shape checks become traced constants, and torch >= 2.9 marks torch.jit as deprecated.
            for category in (torch.jit.TracerWarning, FutureWarning):
                warnings.simplefilter("ignore", category=category)
            traced = torch.jit.trace(self.model, self.im, strict=False)
        traced.save(str(target), _extra_files={"config.txt": json.dumps(self.metadata)})
        return str(target), None

    @try_export
    def export_onnx(self, prefix: str = colorstr("ONNX:")) -> tuple[str, Any]:
        """Export with torch's TorchScript-based ONNX exporter; metadata goes into `metadata_props`."""
        onnx = _import_onnx()
        opset = int(self.args.opset or get_latest_opset())
        LOGGER.info(f"\n{prefix} writing with onnx {onnx.__version__}, opset {opset}...")
        target = str(self.file.with_suffix(".onnx"))
        axes = self._dynamic_axes(prefix)
        # A dynamic-batch graph is traced on CPU.
        model, im = (self.model.cpu(), self.im.cpu()) if axes else (self.model, self.im)
        _onnx_export(model, im, target, opset, axes)
        graph = onnx.load(target)
        if self.args.simplify:
            graph = _slim(graph, prefix)
        for key, value in self.metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(graph, target)
        return target, graph

    @try_export
    def export_openvino(self, prefix: str = colorstr("OpenVINO:")) -> tuple[str, Any]:
        """Convert the PyTorch model with openvino; half=True saves fp16-compressed weights.

        Writes `<name>_openvino_model/` holding `<name>.xml`, `<name>.bin` and `metadata.yaml`.
        """
        openvino = _import_openvino()
        precision = "FP16" if self.args.half else "FP32"
        LOGGER.info(f"\n{prefix} converting with openvino {openvino.__version__} ({precision} weights)...")
        folder = self.file.parent / f"{self.file.stem}{OPENVINO_FOLDER_SUFFIX}"
        model, im = self.model.cpu().float(), self.im.cpu().float()
        batch = -1 if self._dynamic_axes(prefix) else im.shape[0]  # -1: any batch size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            graph = openvino.convert_model(model, input=[[batch, *im.shape[1:]]], example_input=im)
        folder.mkdir(parents=True, exist_ok=True)
        openvino.save_model(graph, str(folder / f"{self.file.stem}.xml"), compress_to_fp16=bool(self.args.half))
        yaml_save(folder / OPENVINO_METADATA, self.metadata)
        return str(folder), graph

    def _dynamic_axes(self, prefix: str) -> dict | None:
        if not self.args.dynamic:
            return None
        # The deformable attention splits its flattened value tensor by per-level h * w sizes, which
        # tracing records as constants, so only the batch axis can be dynamic for RT-DETR.
        LOGGER.info(f"{prefix} dynamic=True makes the batch size dynamic; height and width stay {self.imgsz}")
        return {"images": {0: "batch"}, "output0": {0: "batch"}}


def _import_extra(module: str, fmt: str, packages: str) -> Any:
    """Import the optional package a format needs, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"format='{fmt}' needs the {module} package, an optional extra: pip install {packages} "
            "(or pip install 'ultralytics[export]')"
        ) from e


def _import_onnx() -> Any:
    return _import_extra("onnx", "onnx", "onnx onnxruntime")


def _import_openvino() -> Any:
    return _import_extra("openvino", "openvino", "openvino")


def _onnx_export(model: nn.Module, im: torch.Tensor, target: str, opset: int, axes: dict | None) -> None:
    """torch.onnx.export with input 'images', output 'output0', constant folding, the legacy (non-dynamo) path."""
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        # torch >= 2.9 flags the TorchScript-based exporter as legacy; it is the one upstream 8.3 uses.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        # The decoder gathers top-k query indices, which are never negative.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            model,
            im,
            target,
            verbose=False,
            opset_version=opset,
            do_constant_folding=True,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=axes,
            **legacy,
        )


def _slim(graph: Any, prefix: str) -> Any:
    """Simplify with onnxslim when installed; a failure keeps the unsimplified graph."""
    try:
        import onnxslim
    except ImportError:
        LOGGER.info(f"{prefix} onnxslim not installed, skipping simplify (pip install onnxslim)")
        return graph
    LOGGER.info(f"{prefix} simplifying with onnxslim {onnxslim.__version__}...")
    try:
        return onnxslim.slim(graph)
    except Exception as e:  # the simplifier is optional; the exported graph is still valid
        LOGGER.warning(f"{prefix} WARNING ⚠️ simplifier failure, keeping the unsimplified graph: {e}")
        return graph
