"""One inference interface over a model in memory, a .pt checkpoint, a TorchScript file or an ONNX file.

`AutoBackend(weights)(im)` takes a (B, 3, H, W) float tensor in 0-1 and returns the detector's
raw output `y`, a (B, nq, 4 + nc) tensor (normalised xywh, then class scores), whatever the
backend; the training-only extras that a PyTorch RT-DETR returns next to `y` are dropped.
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ultralytics.utils import LOGGER, yaml_load

SUPPORTED_SUFFIXES = (".pt", ".torchscript", ".onnx")


def default_class_names(data: str | Path | dict | None = None) -> dict[int, str]:
    """Class names from a dataset yaml (or dict) when given, else 999 placeholders class0..class998."""
    if isinstance(data, dict) and "names" in data:
        return check_class_names(data["names"])
    if data and Path(str(data)).suffix in {".yaml", ".yml"} and Path(str(data)).is_file():
        return check_class_names(yaml_load(data).get("names", {}))
    return {i: f"class{i}" for i in range(999)}


def check_class_names(names: list | tuple | dict) -> dict[int, str]:
    """Return names as {int: str} with keys 0..n-1; a list becomes a dict."""
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict):
        raise TypeError(f"Class names must be a list or a dict {{index: name}}, got {type(names).__name__}")
    names = {int(k): str(v) for k, v in names.items()}
    n = len(names)
    if names and (min(names) < 0 or max(names) >= n):
        raise KeyError(
            f"{n}-class dataset requires class indices 0-{n - 1}, but the names have indices "
            f"{min(names)}-{max(names)}"
        )
    return names


def parse_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn metadata strings back into values: stride/batch to int, imgsz/names/args to Python objects.

    ONNX stores every value as text (`str(value)`), TorchScript stores JSON, so both paths end here.
    """
    out = dict(raw)
    for k, v in raw.items():
        if k in {"stride", "batch"}:
            out[k] = int(v)
        elif k in {"imgsz", "names", "args", "kpt_shape"} and isinstance(v, str):
            out[k] = ast.literal_eval(v)
    if "names" in out:
        out["names"] = check_class_names(out["names"])
    return out


class AutoBackend(nn.Module):
    """Load `weights` for inference and expose `names`, `stride`, `imgsz`, `fp16`, `forward`, `warmup`.

    `dynamic` says whether the batch size may vary, `static_hw` whether the input height and width
    are fixed to `imgsz` (exported RT-DETR graphs).

    Backend flags (`pt`, `jit`, `onnx`, `nn_module`, and the always-False flags of upstream's other
    formats) say which one was loaded.
    """

    @torch.no_grad()
    def __init__(
        self,
        weights: str | Path | list | nn.Module = "yolo11n.pt",
        device: torch.device = torch.device("cpu"),
        dnn: bool = False,
        data: str | Path | dict | None = None,
        fp16: bool = False,
        batch: int = 1,
        fuse: bool = True,
        verbose: bool = True,
    ):
        super().__init__()
        w = str(weights[0] if isinstance(weights, list) else weights)
        nn_module = isinstance(weights, nn.Module)
        pt, jit, onnx = (False,) * 3 if nn_module else self._model_type(w)
        # Flags of upstream formats this package does not load; kept so callers can test them.
        self.xml = self.engine = self.coreml = self.saved_model = self.pb = self.tflite = False
        self.edgetpu = self.tfjs = self.paddle = self.ncnn = self.triton = False

        cuda = torch.cuda.is_available() and device.type != "cpu"
        if not cuda:
            device = torch.device("cpu")
        fp16 = fp16 and cuda  # half precision needs a GPU on every backend here

        stride, task, imgsz = 32, "detect", [640, 640]
        names: dict[int, str] | None = None
        metadata: dict[str, Any] = {}
        self.session = None
        self.output_names: list[str] = []
        self.dynamic = True  # batch size may vary
        self.static_hw = jit  # traced RT-DETR graphs keep the exported height and width

        if nn_module or pt:
            if nn_module:
                model = weights.to(device)
                if fuse and hasattr(model, "fuse"):
                    model = model.fuse(verbose=verbose)
            else:
                from ultralytics.nn.tasks import attempt_load_weights

                model = attempt_load_weights(
                    weights if isinstance(weights, list) else w, device=device, inplace=True, fuse=fuse
                )
            names = self._names_of(model)
            stride = self._stride_of(model)
            model = model.half() if fp16 else model.float()
            self.model = model.eval()
            pt = True  # an nn.Module runs exactly like a loaded checkpoint
        elif jit:
            LOGGER.info(f"Loading {w} for TorchScript inference...")
            extra_files = {"config.txt": ""}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=FutureWarning)  # torch >= 2.9 marks torch.jit as deprecated
                model = torch.jit.load(w, _extra_files=extra_files, map_location=device)
            model = model.half() if fp16 else model.float()
            self.model = model.eval()
            if extra_files["config.txt"]:
                metadata = json.loads(extra_files["config.txt"])
        elif onnx:
            if dnn:
                raise ValueError("dnn=True (OpenCV DNN) is not supported here; ONNX models run with onnxruntime")
            LOGGER.info(f"Loading {w} for ONNX Runtime inference...")
            try:
                import onnxruntime
            except ImportError as e:
                raise ImportError(
                    f"Running '{w}' needs onnxruntime, an optional extra: pip install onnxruntime "
                    "(or pip install 'ultralytics[export]')"
                ) from e
            providers = ["CPUExecutionProvider"]
            if cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif cuda:
                LOGGER.warning("WARNING ⚠️ onnxruntime has no CUDA provider; running the ONNX model on CPU")
                device, fp16 = torch.device("cpu"), False
            self.session = onnxruntime.InferenceSession(w, providers=providers)
            self.output_names = [x.name for x in self.session.get_outputs()]
            inp = self.session.get_inputs()[0]
            self.dynamic = isinstance(inp.shape[0], str)
            self.static_hw = not any(isinstance(s, str) for s in inp.shape[2:])
            fp16 = "float16" in inp.type
            metadata = dict(self.session.get_modelmeta().custom_metadata_map)
            self.model = None

        if metadata:
            metadata = parse_metadata(metadata)
            stride = int(metadata.get("stride", stride))
            task = metadata.get("task", task)
            batch = int(metadata.get("batch", batch))
            imgsz = list(metadata.get("imgsz", imgsz))
            names = metadata.get("names", names)
        elif not (pt or nn_module):
            LOGGER.warning(f"WARNING ⚠️ Metadata not found in '{w}'; using default names and stride {stride}")

        if names is None:
            names = default_class_names(data)

        self.pt, self.jit, self.onnx, self.nn_module = pt, jit, onnx, nn_module
        self.device, self.fp16, self.cuda = device, fp16, cuda
        self.stride, self.task, self.batch, self.imgsz = stride, task, batch, imgsz
        self.names = check_class_names(names)
        self.metadata = metadata

    @staticmethod
    def _model_type(p: str) -> tuple[bool, bool, bool]:
        """(pt, jit, onnx) flags from the file name."""
        name = Path(p).name.lower()
        flags = tuple(name.endswith(s) for s in SUPPORTED_SUFFIXES)
        if not any(flags):
            raise ValueError(
                f"Model '{p}' is not a supported format: use a .pt checkpoint, a .torchscript file or an .onnx "
                f"file (supported suffixes: {', '.join(SUPPORTED_SUFFIXES)})"
            )
        if not Path(p).exists():
            raise FileNotFoundError(f"Model file '{p}' does not exist")
        return flags

    @staticmethod
    def _names_of(model: nn.Module) -> dict[int, str] | None:
        inner = model.module if hasattr(model, "module") else model
        return getattr(inner, "names", None)

    @staticmethod
    def _stride_of(model: nn.Module) -> int:
        s = getattr(model, "stride", None)
        if s is None:
            return 32
        return max(int(torch.as_tensor(s).max()), 32)

    def forward(
        self,
        im: torch.Tensor,
        augment: bool = False,
        visualize: bool | Path = False,
        embed: list | None = None,
    ) -> torch.Tensor:
        """Run the model on a (B, 3, H, W) tensor in 0-1 and return y (B, nq, 4 + nc) on self.device."""
        if self.fp16 and im.dtype != torch.float16:
            im = im.half()
        if self.pt or self.nn_module:
            # Extra keywords only when asked for, so that plain nn.Modules (no such arguments) work too.
            kwargs = {k: v for k, v in (("augment", augment), ("visualize", visualize), ("embed", embed)) if v}
            y = self.model(im, **kwargs)
        elif self.jit:
            y = self.model(im)
        else:
            y = self._run_onnx(im)
        if isinstance(y, (list, tuple)):
            y = y[0]  # RT-DETR in PyTorch returns (y, decoder extras); inference needs y only
        return self.from_numpy(y)

    def _run_onnx(self, im: torch.Tensor) -> np.ndarray:
        inp = self.session.get_inputs()[0]
        fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        if fixed_batch is not None and im.shape[0] != fixed_batch and im.shape[0] % fixed_batch == 0:
            # A fixed-batch export still serves larger batches, one exported batch at a time.
            return np.concatenate([self._run_onnx(chunk) for chunk in im.split(fixed_batch)])
        self._check_onnx_input(im)
        return self.session.run(self.output_names[:1], {inp.name: im.cpu().numpy()})[0]

    def _check_onnx_input(self, im: torch.Tensor) -> None:
        expected = self.session.get_inputs()[0].shape
        for axis, (want, got) in enumerate(zip(expected, im.shape)):
            if isinstance(want, int) and want != got:
                raise ValueError(
                    f"ONNX model expects input shape {tuple(expected)} (BCHW), got {tuple(im.shape)} at axis {axis}; "
                    f"predict with imgsz={self.imgsz} and batch={self.batch}, or re-export with dynamic=True"
                )

    def from_numpy(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.tensor(x).to(self.device) if isinstance(x, np.ndarray) else x

    def warmup(self, imgsz: tuple[int, int, int, int] = (1, 3, 640, 640)) -> None:
        """Run one dummy forward on GPU so the first real call does not pay for setup (no-op on CPU)."""
        if self.device.type != "cpu":
            im = torch.empty(*imgsz, dtype=torch.half if self.fp16 else torch.float, device=self.device)
            for _ in range(2 if self.jit else 1):
                self.forward(im)
