"""One inference interface over a model in memory, a .pt checkpoint, a TorchScript file or an ONNX file.

`AutoBackend(weights)(im)` takes a (B, 3, H, W) float tensor in 0-1 and returns the detector's
raw output `y`, a (B, nq, 4 + nc) tensor (normalised xywh, then class scores), whatever the
backend; the training-only extras that a PyTorch RT-DETR returns next to `y` are dropped.

Each backend has its own loader below; all return a `_Backend` record, and `AutoBackend` applies
the metadata embedded in exported files (stride, task, batch, imgsz, names) on top of it.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ultralytics.data.utils import check_class_names as _check_dataset_names
from ultralytics.utils import LOGGER, yaml_load
from ultralytics.utils.precision import bf16_autocast, choose_cpu_bf16, to_channels_last

SUPPORTED_SUFFIXES = (".pt", ".torchscript", ".onnx")

# Upstream formats this package does not load; their flags exist (always False) so callers can test them.
_UNSUPPORTED_FLAGS = (
    "xml", "engine", "coreml", "saved_model", "pb", "tflite", "edgetpu", "tfjs", "paddle", "ncnn", "triton",
)

# Metadata values that come back as text and must be parsed: int() for these ...
_INT_KEYS = frozenset({"stride", "batch"})
# ... and Python literals (lists, dicts) for these.
_LITERAL_KEYS = frozenset({"imgsz", "names", "args", "kpt_shape"})

_PLACEHOLDER_CLASSES = 999


def default_class_names(data: str | Path | dict | None = None) -> dict[int, str]:
    """Class names from a dataset yaml (or dict) when given, else 999 placeholders class0..class998."""
    if isinstance(data, dict) and "names" in data:
        return check_class_names(data["names"])
    path = Path(str(data)) if data else None
    if path is not None and path.suffix in {".yaml", ".yml"} and path.is_file():
        return check_class_names(yaml_load(data).get("names", {}))
    return {index: f"class{index}" for index in range(_PLACEHOLDER_CLASSES)}


def check_class_names(names: list | tuple | dict) -> dict[int, str]:
    """Return names as {int: str} with keys 0..n-1; a list becomes a dict.

    The same rule as for a dataset yaml's `names:`, so the dataset check does the work.
    """
    return _check_dataset_names(names, "model metadata")


def parse_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn metadata strings back into values: stride/batch to int, imgsz/names/args to Python objects.

    ONNX stores every value as text (`str(value)`), TorchScript stores JSON, so both paths end here.
    """
    parsed = dict(raw)
    for key in _INT_KEYS & raw.keys():
        parsed[key] = int(raw[key])
    for key in _LITERAL_KEYS & raw.keys():
        if isinstance(raw[key], str):
            parsed[key] = ast.literal_eval(raw[key])
    if "names" in parsed:
        parsed["names"] = check_class_names(parsed["names"])
    return parsed


def read_embedded_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata an exported .torchscript or .onnx file carries, parsed, without preparing it to run.

    Lets a caller learn the class names, stride or imgsz of an exported model before the first
    prediction. Returns {} for a file without metadata; raises ValueError for other suffixes.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in {".torchscript", ".onnx"}:
        raise ValueError(f"read_embedded_metadata('{path}'): only .torchscript and .onnx files carry metadata")
    stamp = file.stat().st_mtime_ns  # a re-exported file under the same name is read again
    return copy.deepcopy(_cached_metadata(str(file.resolve()), stamp))  # callers may edit theirs


@functools.lru_cache(maxsize=16)
def _cached_metadata(path: str, stamp: int) -> dict[str, Any]:
    raw = _torchscript_extra_config(path) if path.lower().endswith(".torchscript") else _onnx_properties(path)
    return parse_metadata(raw) if raw else {}


def _torchscript_extra_config(path: str) -> dict[str, Any]:
    """config.txt from a TorchScript archive; torch.jit.save writes it as `<archive>/extra/config.txt`."""
    with zipfile.ZipFile(path) as archive:
        member = next((n for n in archive.namelist() if n.endswith("/extra/config.txt")), None)
        text = archive.read(member).decode("utf-8") if member else ""
    return json.loads(text) if text.strip() else {}


def _onnx_properties(path: str) -> dict[str, str]:
    """The ONNX metadata_props as a dict, via the onnx package when present, else an onnxruntime session."""
    try:
        import onnx
    except ImportError:
        return dict(_load_onnx(path, dnn=False, cuda=False, device=torch.device("cpu")).metadata)
    graph = onnx.load(path, load_external_data=False)
    return {prop.key: prop.value for prop in graph.metadata_props}


@dataclass
class _Backend:
    """What a loader found: the runnable thing and the facts known about it before metadata."""

    model: Any  # nn.Module, torch.jit.ScriptModule, or None for ONNX
    device: torch.device
    fp16: bool
    names: dict[int, str] | None = None
    stride: int = 32
    metadata: dict[str, Any] = field(default_factory=dict)
    session: Any = None  # onnxruntime.InferenceSession
    output_names: list[str] = field(default_factory=list)
    dynamic: bool = True  # batch size may vary
    static_hw: bool = False  # input height and width fixed to the exported imgsz


def _suffix_flags(path: str) -> tuple[bool, bool, bool]:
    """(pt, jit, onnx) from the file name; raises for other suffixes and for missing files."""
    name = Path(path).name.lower()
    flags = tuple(name.endswith(suffix) for suffix in SUPPORTED_SUFFIXES)
    if not any(flags):
        raise ValueError(
            f"Model '{path}' is not a supported format: use a .pt checkpoint, a .torchscript file or an .onnx "
            f"file (supported suffixes: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    if not Path(path).exists():
        raise FileNotFoundError(f"Model file '{path}' does not exist")
    return flags


def _module_stride(model: nn.Module) -> int:
    """The model's largest stride, at least 32 (RT-DETR's coarsest level); 32 when it has none."""
    stride = getattr(model, "stride", None)
    return 32 if stride is None else max(int(torch.as_tensor(stride).max()), 32)


def _load_torch(weights: Any, device: torch.device, fp16: bool, fuse: bool, verbose: bool) -> _Backend:
    """An nn.Module as given (moved, optionally fused) or loaded from one or more .pt checkpoints."""
    if isinstance(weights, nn.Module):
        model = weights.to(device)
        if fuse and hasattr(model, "fuse"):
            model = model.fuse(verbose=verbose)
    else:
        from ultralytics.nn.checkpoints import attempt_load_weights

        model = attempt_load_weights(weights, device=device, inplace=True, fuse=fuse)
    inner = getattr(model, "module", model)  # DataParallel / DDP wrap the real model
    names = getattr(inner, "names", None)
    stride = _module_stride(model)
    model = model.half() if fp16 else model.float()
    return _Backend(model=model.eval(), device=device, fp16=fp16, names=names, stride=stride)


def _load_torchscript(path: str, device: torch.device, fp16: bool) -> _Backend:
    """A traced file; the exporter stores its metadata as the JSON extra file config.txt."""
    LOGGER.info(f"Loading {path} for TorchScript inference...")
    extras = {"config.txt": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # torch >= 2.9 marks torch.jit as deprecated
        model = torch.jit.load(path, _extra_files=extras, map_location=device)
    model = model.half() if fp16 else model.float()
    metadata = json.loads(extras["config.txt"]) if extras["config.txt"] else {}
    # Traced RT-DETR graphs keep the exported height and width.
    return _Backend(model=model.eval(), device=device, fp16=fp16, metadata=metadata, static_hw=True)


def _load_onnx(path: str, dnn: bool, cuda: bool, device: torch.device) -> _Backend:
    """An onnxruntime session (CUDA when available and asked for); precision and shapes come from the graph."""
    if dnn:
        raise ValueError("dnn=True (OpenCV DNN) is not supported here; ONNX models run with onnxruntime")
    LOGGER.info(f"Loading {path} for ONNX Runtime inference...")
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f"Running '{path}' needs onnxruntime, an optional extra: pip install onnxruntime "
            "(or pip install 'ultralytics[export]')"
        ) from e
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    elif cuda:
        LOGGER.warning("WARNING ⚠️ onnxruntime has no CUDA provider; running the ONNX model on CPU")
        device = torch.device("cpu")
    session = onnxruntime.InferenceSession(path, providers=providers)
    graph_input = session.get_inputs()[0]
    return _Backend(
        model=None,
        device=device,
        fp16="float16" in graph_input.type,
        metadata=dict(session.get_modelmeta().custom_metadata_map),
        session=session,
        output_names=[out.name for out in session.get_outputs()],
        dynamic=isinstance(graph_input.shape[0], str),  # symbolic batch axis
        static_hw=not any(isinstance(s, str) for s in graph_input.shape[2:]),
    )


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
        nn_module = isinstance(weights, nn.Module)
        path = str(weights[0] if isinstance(weights, list) else weights)
        pt, jit, onnx = (False, False, False) if nn_module else _suffix_flags(path)
        for flag in _UNSUPPORTED_FLAGS:
            setattr(self, flag, False)

        cuda = torch.cuda.is_available() and device.type != "cpu"
        device = device if cuda else torch.device("cpu")
        # half=True: float16 on CUDA; on a CPU bfloat16 autocast for PyTorch models where the CPU has it
        bf16 = choose_cpu_bf16(fp16 and (nn_module or pt), device)
        fp16 = fp16 and cuda
        if nn_module or pt:
            source = weights if nn_module or isinstance(weights, list) else path
            loaded = _load_torch(source, device, fp16, fuse, verbose)
            loaded.model = to_channels_last(loaded.model) if bf16 else loaded.model
        elif jit:
            loaded = _load_torchscript(path, device, fp16)
        else:
            loaded = _load_onnx(path, dnn, cuda, device)

        self.model = loaded.model
        self.session, self.output_names = loaded.session, loaded.output_names
        self.dynamic, self.static_hw = loaded.dynamic, loaded.static_hw
        self.pt, self.jit, self.onnx, self.nn_module = nn_module or pt, jit, onnx, nn_module
        self.device, self.fp16, self.cuda = loaded.device, loaded.fp16, cuda
        self.bf16 = bf16  # CPU bfloat16 autocast around the forward; inputs stay float32
        self._apply_metadata(loaded, path, batch, data)

    def _apply_metadata(self, loaded: _Backend, path: str, batch: int, data: Any) -> None:
        """stride, task, batch, imgsz, names: embedded metadata first, then what the loader knew, then defaults."""
        meta = parse_metadata(loaded.metadata) if loaded.metadata else {}
        if not meta and not self.pt:
            LOGGER.warning(f"WARNING ⚠️ no metadata in '{path}'; using default names and stride {loaded.stride}")
        self.stride = int(meta.get("stride", loaded.stride))
        self.task = meta.get("task", "detect")
        self.batch = int(meta.get("batch", batch))
        self.imgsz = list(meta.get("imgsz", [640, 640]))
        names = meta.get("names", loaded.names)
        self.names = check_class_names(default_class_names(data) if names is None else names)
        self.metadata = meta

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
        if self.onnx:
            y = self._run_onnx(im)
        elif self.jit:
            y = self.model(im)
        else:
            # Extra keywords only when asked for, so that plain nn.Modules (no such arguments) work too.
            options = {"augment": augment, "visualize": visualize, "embed": embed}
            y = self._forward_module(im, {k: v for k, v in options.items() if v})
        y = y[0] if isinstance(y, (list, tuple)) else y  # PyTorch RT-DETR adds decoder extras; keep y
        return self.from_numpy(y)

    def _forward_module(self, im: torch.Tensor, options: dict) -> Any:
        """The PyTorch model's forward, under CPU bf16 autocast with a channels_last input when bf16 is on."""
        if not self.bf16:
            return self.model(im, **options)
        with bf16_autocast(True):
            return self.model(im.contiguous(memory_format=torch.channels_last), **options)

    def _run_onnx(self, im: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) -> (B, nq, 4 + nc); a fixed-batch graph serves multiples of its batch in chunks."""
        graph_input = self.session.get_inputs()[0]
        exported_batch = graph_input.shape[0]
        if isinstance(exported_batch, int) and im.shape[0] != exported_batch and im.shape[0] % exported_batch == 0:
            return np.concatenate([self._run_onnx(chunk) for chunk in im.split(exported_batch)])
        self._check_onnx_input(im)
        return self.session.run(self.output_names[:1], {graph_input.name: im.cpu().numpy()})[0]

    def _check_onnx_input(self, im: torch.Tensor) -> None:
        expected = self.session.get_inputs()[0].shape
        pairs = enumerate(zip(expected, im.shape))
        mismatched = [axis for axis, (want, got) in pairs if isinstance(want, int) and want != got]
        if mismatched:
            raise ValueError(
                f"ONNX model expects input shape {tuple(expected)} (BCHW), got {tuple(im.shape)} "
                f"at axis {mismatched[0]}; "
                f"predict with imgsz={self.imgsz} and batch={self.batch}, or re-export with dynamic=True"
            )

    def from_numpy(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A runtime's numpy output as a tensor on self.device; tensors pass through."""
        if isinstance(x, np.ndarray):
            return torch.tensor(x).to(self.device)
        return x

    def warmup(self, imgsz: tuple[int, int, int, int] = (1, 3, 640, 640)) -> None:
        """Run dummy forwards on GPU so the first real call does not pay for setup (no-op on CPU)."""
        if self.device.type == "cpu":
            return
        dummy = torch.empty(*imgsz, dtype=torch.half if self.fp16 else torch.float, device=self.device)
        passes = 2 if self.jit else 1  # TorchScript optimises on its second run
        for _ in range(passes):
            self.forward(dummy)
