"""Speed and accuracy of a model in every export format this package writes, as one table.

    yolo benchmark model=runs/detect/train/weights/best.pt data=shapes.yaml imgsz=160
    from ultralytics.utils.benchmarks import benchmark
    benchmark(model="best.pt", data="shapes.yaml", imgsz=160, device="cpu")

For each format of `export_formats()` (PyTorch, TorchScript, ONNX, OpenVINO) the model is exported,
the export is validated on `data` with batch 1, and the validator's inference time per image gives
the FPS. Formats upstream Ultralytics writes but this package does not (TensorRT, CoreML, TFLite, ...)
have no row. A format that fails gets a row with status ❌ (export failed) or ❎ (exported, but
validation failed) and empty numbers; the error is logged and kept in `errors` of the result.

The result is upstream's table, a pandas DataFrame with the columns of `COLUMNS`; without pandas,
a list of one dict per row (same keys).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ultralytics.cfg import DEFAULT_MODEL, TASK2DATA, TASK2METRIC
from ultralytics.engine.exporter import export_formats
from ultralytics.utils import LOGGER
from ultralytics.utils.files import file_size
from ultralytics.utils.torch_utils import select_device

METRIC = TASK2METRIC["detect"]
COLUMNS = ("Format", "Status❔", "Size (MB)", METRIC, "Inference time (ms/im)", "FPS")
LOG_FILE = "benchmarks.log"  # the printed table is appended here, in the working folder, as upstream does


@dataclass
class _Format:
    """One row of export_formats(): its display name, `format=` argument and where it can run."""

    name: str
    argument: str
    cpu: bool
    gpu: bool


@dataclass
class _Outcome:
    """What benchmarking one format gave; numbers are None where a step failed."""

    status: str = "❌"
    file: str | None = None
    metric: float | None = None
    ms_per_image: float | None = None
    error: str = ""


def _formats(only: str) -> list[_Format]:
    """The formats to run: all of them, or the one named by `only` (its argument or display name)."""
    table = export_formats()
    rows = [_Format(*fields) for fields in zip(table["Format"], table["Argument"], table["CPU"], table["GPU"])]
    if not only:
        return rows
    chosen = [row for row in rows if only.lower() in {row.argument, row.name.lower()}]
    if not chosen:
        accepted = [row.argument if row.argument != "-" else "pytorch" for row in rows]
        raise ValueError(f"benchmark format='{only}' is not a format this package exports; use one of {accepted}")
    return chosen


def _as_model(model: Any) -> Any:
    from ultralytics import RTDETR
    from ultralytics.engine.model import Model

    return model if isinstance(model, Model) else RTDETR(str(model))


def _check_device(fmt: _Format, device: torch.device) -> None:
    if device.type == "cuda" and not fmt.gpu:
        raise RuntimeError(f"{fmt.name} inference is not supported on GPU; benchmark it with device=cpu")
    if device.type == "cpu" and not fmt.cpu:
        raise RuntimeError(f"{fmt.name} inference is not supported on CPU")


def _export(model: Any, fmt: _Format, settings: dict) -> tuple[Any, str | None]:
    """(model to validate, its file): the model itself for PyTorch, else the export loaded back."""
    if fmt.argument == "-":
        return model, model.ckpt_path
    written = model.export(format=fmt.argument, verbose=False, **settings)
    return _as_model(written), written


def _run_format(model: Any, fmt: _Format, data: str, settings: dict) -> _Outcome:
    """Export, then validate one format; every failure ends up in the outcome instead of being raised."""
    outcome = _Outcome()
    try:
        _check_device(fmt, select_device(settings["device"], verbose=False))
        exported, outcome.file = _export(model, fmt, settings)
        outcome.status = "❎"  # exported; validation still to come
        metrics = exported.val(data=data, batch=1, plots=False, verbose=False, **settings)
        outcome.metric = float(metrics.results_dict[METRIC])
        outcome.ms_per_image = float(metrics.speed["inference"])
        outcome.status = "✅"
    except Exception as error:  # a broken format is a row of the table, not the end of the benchmark
        outcome.error = f"{type(error).__name__}: {error}"
        LOGGER.warning(f"ERROR ❌️ Benchmark failure for {fmt.name}: {outcome.error}")
    return outcome


def _row(fmt: _Format, outcome: _Outcome, eps: float) -> dict[str, Any]:
    """The table row, rounded as upstream prints it."""
    measured = (None, None, None)
    if outcome.status == "✅":
        speed = outcome.ms_per_image
        measured = (round(outcome.metric, 4), round(speed, 2), round(1000 / (speed + eps), 2))
    values = (fmt.name, outcome.status, round(file_size(outcome.file), 1), *measured)
    return dict(zip(COLUMNS, values))


def _table(rows: list[dict[str, Any]], errors: dict[str, str]) -> Any:
    """A pandas DataFrame (errors in `.attrs["errors"]`), or the rows themselves when pandas is missing."""
    try:
        import pandas
    except ImportError:
        LOGGER.warning("WARNING ⚠️ pandas is not installed, so benchmark() returns a list of dicts (pip install pandas)")
        return rows
    frame = pandas.DataFrame(rows, columns=list(COLUMNS))
    frame.attrs["errors"] = errors
    return frame


def _report(table: Any, name: str, data: str, imgsz: int, seconds: float) -> None:
    """Print the table and append it to benchmarks.log."""
    text = table.to_string() if hasattr(table, "to_string") else "\n".join(str(row) for row in table)
    summary = f"\nBenchmarks complete for {name} on {data} at imgsz={imgsz} ({seconds:.2f}s)\n{text}\n"
    LOGGER.info(summary)
    with open(LOG_FILE, "a", errors="ignore", encoding="utf-8") as log:
        log.write(summary)


def _check_floor(rows: list[dict[str, Any]], floor: float) -> None:
    """verbose=<float>: every measured mAP must reach it (upstream's CI check)."""
    low = [row["Format"] for row in rows if row[METRIC] is not None and row[METRIC] <= floor]
    if low:
        raise AssertionError(f"Benchmark failure: {METRIC} <= floor {floor} for {low}")


def benchmark(
    model: Any = DEFAULT_MODEL,
    data: str | None = None,
    imgsz: int = 160,
    half: bool = False,
    int8: bool = False,
    device: str | int | torch.device = "cpu",
    verbose: bool | float = False,
    eps: float = 1e-3,
    format: str = "",
) -> Any:
    """Export `model` to each format (or only `format`), validate it on `data` and time its inference.

    Args:
        model: a Model, or what RTDETR() accepts (checkpoint, yaml, exported file).
        data: dataset yaml to validate on; the demo dataset when None.
        imgsz, half, int8, device: passed to export and val.
        verbose: a float is a floor every measured mAP50-95 must exceed (AssertionError otherwise).
        eps: added to the inference time before computing FPS.
        format: benchmark only this format ('onnx', 'openvino', ..., or 'pytorch').

    Returns:
        The table (see COLUMNS) as a DataFrame, or as a list of dicts without pandas.
    """
    started = time.time()
    model = _as_model(model)
    if data is None:
        data = TASK2DATA["detect"]
        LOGGER.warning(f"WARNING ⚠️ benchmark has no data=; validating on the demo dataset data={data}")
    settings = {"imgsz": imgsz, "half": half, "int8": int8, "device": device}
    rows, errors = [], {}
    for fmt in _formats(format):
        outcome = _run_format(model, fmt, data, settings)
        rows.append(_row(fmt, outcome, eps))
        if outcome.error:
            errors[fmt.name] = outcome.error
    table = _table(rows, errors)
    _report(table, Path(str(model.model_name)).name, data, imgsz, time.time() - started)
    if isinstance(verbose, float) and not isinstance(verbose, bool):
        _check_floor(rows, verbose)
    return table
