"""One inference interface over a model in memory, a .pt checkpoint, a TorchScript file, an ONNX file or an
OpenVINO folder (`<name>_openvino_model/` with `<name>.xml`, `<name>.bin` and `metadata.yaml`).

`AutoBackend(weights)(im)` takes a (B, 3, H, W) float tensor in 0-1 and returns the detector's
raw output `y`, a (B, nq, 4 + nc) tensor (normalised xywh, then class scores), whatever the
backend; the training-only extras that a PyTorch RT-DETR returns next to `y` are dropped.

Each backend has its own loader below; all return a `_Backend` record, and `AutoBackend` applies
the metadata embedded in exported files (stride, task, batch, imgsz, names) on top of it.

A graph exported with a fixed batch size (batch=N, dynamic=False) takes any number of images: they
run N at a time, the last group padded with blank images whose outputs are dropped.
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
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ultralytics.data.utils import check_class_names as _check_dataset_names
from ultralytics.utils import LOGGER, yaml_load
from ultralytics.utils.precision import bf16_autocast, choose_cpu_bf16, to_channels_last

SUPPORTED_SUFFIXES = (".pt", ".torchscript", ".onnx")
# An OpenVINO export is a folder with this ending (or the .xml file inside it).
OPENVINO_FOLDER_SUFFIX = "_openvino_model"
OPENVINO_METADATA = "metadata.yaml"

# Upstream formats this package does not load; their flags exist (always False) so callers can test them.
_UNSUPPORTED_FLAGS = (
    "engine", "coreml", "saved_model", "pb", "tflite", "edgetpu", "tfjs", "paddle", "ncnn", "triton",
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
    if is_openvino_path(file):
        sidecar = openvino_xml(file).parent / OPENVINO_METADATA
        return parse_metadata(yaml_load(sidecar)) if sidecar.is_file() else {}
    suffix = file.suffix.lower()
    if suffix not in {".torchscript", ".onnx"}:
        raise ValueError(
            f"read_embedded_metadata('{path}'): only .torchscript and .onnx files and OpenVINO folders "
            f"(<name>{OPENVINO_FOLDER_SUFFIX}/) carry metadata"
        )
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


def is_openvino_path(path: str | Path) -> bool:
    """True for an OpenVINO export: a `<name>_openvino_model` folder or an .xml file."""
    path = Path(path)
    return path.name.endswith(OPENVINO_FOLDER_SUFFIX) or path.suffix.lower() == ".xml"


def openvino_xml(path: str | Path) -> Path:
    """The .xml graph of an OpenVINO export given as its folder or as the .xml itself."""
    path = Path(path)
    if path.suffix.lower() == ".xml":
        return path
    graphs = sorted(path.glob("*.xml"))
    if not graphs:
        raise FileNotFoundError(f"OpenVINO folder '{path}' holds no .xml graph; export again with format=openvino")
    return graphs[0]


@dataclass
class _Backend:
    """What a loader found: the runnable thing and the facts known about it before metadata."""

    model: Any  # nn.Module, torch.jit.ScriptModule, or None for ONNX
    device: torch.device
    fp16: bool
    names: dict[int, str] | None = None
    stride: int = 32
    metadata: dict[str, Any] = field(default_factory=dict)
    session: Any = None  # onnxruntime.InferenceSession, or an OpenVINO CompiledModel
    output_names: list[str] = field(default_factory=list)
    dynamic: bool = True  # batch size may vary
    static_hw: bool = False  # input height and width fixed to the exported imgsz


def _suffix_flags(path: str) -> tuple[bool, bool, bool, bool]:
    """(pt, jit, onnx, xml) from the file name; raises for other suffixes and for missing files."""
    name = Path(path).name.lower()
    flags = (*(name.endswith(suffix) for suffix in SUPPORTED_SUFFIXES), is_openvino_path(path))
    if not any(flags):
        raise ValueError(
            f"Model '{path}' is not a supported format: use a .pt checkpoint, a .torchscript file, an .onnx "
            f"file or an OpenVINO folder (supported suffixes: {', '.join(SUPPORTED_SUFFIXES)}, "
            f"{OPENVINO_FOLDER_SUFFIX})"
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


def _load_openvino(path: str, batch: int) -> _Backend:
    """A compiled OpenVINO graph on CPU; the exporter writes its metadata to metadata.yaml beside the .xml."""
    try:
        import openvino
    except ImportError as e:
        raise ImportError(
            f"Running '{path}' needs openvino, an optional extra: pip install openvino "
            "(or pip install 'ultralytics[export]')"
        ) from e
    xml = openvino_xml(path)
    LOGGER.info(f"Loading {xml.parent} for OpenVINO {openvino.__version__} inference...")
    core = openvino.Core()
    graph = core.read_model(xml)
    image_input = graph.get_parameters()[0]
    if image_input.get_layout().empty:
        image_input.set_layout(openvino.Layout("NCHW"))
    # Throughput mode spreads the images of a batch over CPU streams; latency mode suits one image.
    hint = "CUMULATIVE_THROUGHPUT" if batch > 1 else "LATENCY"
    compiled = core.compile_model(graph, device_name="CPU", config={"PERFORMANCE_HINT": hint})
    sidecar = xml.parent / OPENVINO_METADATA
    shape = graph.input(0).get_partial_shape()  # (B, 3, H, W), dimensions static or dynamic
    return _Backend(
        model=None,
        device=torch.device("cpu"),
        fp16=False,  # compressed fp16 weights still take and return fp32 tensors
        metadata=yaml_load(sidecar) if sidecar.is_file() else {},
        session=compiled,
        dynamic=shape[0].is_dynamic,
        static_hw=all(shape[axis].is_static for axis in (2, 3)),
    )


def run_in_fixed_batches(run: Callable[[np.ndarray], np.ndarray], im: np.ndarray, size: int) -> np.ndarray:
    """Run a graph that takes exactly `size` images on any number of them.

    im: (B, 3, H, W). The images go `size` at a time; the last group is filled up with blank images,
    whose outputs are dropped. Returns the B outputs concatenated, (B, ...).
    """
    outputs = []
    for start in range(0, len(im), size):
        group = im[start : start + size]
        real = len(group)
        if real < size:
            blanks = np.zeros((size - real, *group.shape[1:]), dtype=group.dtype)
            group = np.concatenate([group, blanks])
        outputs.append(run(group)[:real])
    return np.concatenate(outputs)


class AutoBackend(nn.Module):
    """Load `weights` for inference and expose `names`, `stride`, `imgsz`, `fp16`, `forward`, `warmup`.

    `dynamic` says whether the batch size may vary, `static_hw` whether the input height and width
    are fixed to `imgsz` (exported RT-DETR graphs).

    Backend flags (`pt`, `jit`, `onnx`, `xml` (OpenVINO), `nn_module`, and the always-False flags of upstream's other
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
        pt, jit, onnx, xml = (False,) * 4 if nn_module else _suffix_flags(path)
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
        elif xml:
            loaded = _load_openvino(path, batch)
        else:
            loaded = _load_onnx(path, dnn, cuda, device)

        self.model = loaded.model
        self.session, self.output_names = loaded.session, loaded.output_names
        self.dynamic, self.static_hw = loaded.dynamic, loaded.static_hw
        self.pt, self.jit, self.onnx, self.xml, self.nn_module = nn_module or pt, jit, onnx, xml, nn_module
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
        elif self.xml:
            y = self._run_openvino(im)
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
        """(B, 3, H, W) -> (B, nq, 4 + nc); a fixed-batch graph takes any B (see run_in_fixed_batches)."""
        graph_input = self.session.get_inputs()[0]
        expected = graph_input.shape
        self._check_graph_input(im, expected)

        def run(images: np.ndarray) -> np.ndarray:
            return self.session.run(self.output_names[:1], {graph_input.name: images})[0]

        return self._run_numpy(run, im, expected[0])

    def _run_openvino(self, im: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) -> (B, nq, 4 + nc) through the compiled OpenVINO graph."""
        shape = self.session.input(0).get_partial_shape()
        expected = [dim.get_length() if dim.is_static else None for dim in shape]
        self._check_graph_input(im, expected)

        def run(images: np.ndarray) -> np.ndarray:
            return self.session(images)[self.session.output(0)]

        return self._run_numpy(run, im, expected[0])

    @staticmethod
    def _run_numpy(run: Callable[[np.ndarray], np.ndarray], im: torch.Tensor, fixed_batch: Any) -> np.ndarray:
        """`run` on the images as numpy; a graph with an int batch size gets groups of exactly that size."""
        images = im.cpu().numpy()
        if isinstance(fixed_batch, int) and len(images) != fixed_batch:
            return run_in_fixed_batches(run, images, fixed_batch)
        return run(images)

    def _check_graph_input(self, im: torch.Tensor, expected: list) -> None:
        """Raise when channels, height or width of `im` differ from a fixed size of the exported graph.

        expected: the graph's (B, C, H, W), an int per fixed axis; the batch axis is never a mismatch.
        """
        pairs = list(enumerate(zip(expected, im.shape)))[1:]
        mismatched = [axis for axis, (want, got) in pairs if isinstance(want, int) and want != got]
        if mismatched:
            kind = "OpenVINO" if self.xml else "ONNX"
            raise ValueError(
                f"{kind} model expects input shape {tuple(expected)} (BCHW), got {tuple(im.shape)} "
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
