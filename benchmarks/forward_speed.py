"""Eval forward speed of RT-DETR models on CPU, relative to a large float32 matmul (not a test).

For every model the script reports the median wall time of `model(x)` under `torch.inference_mode()`
for the model as built (unfused) and after `model.fuse()` (what prediction runs), and turns it into
an effective GFLOP/s: thop's GFLOPs for the input (the count `model.info()` prints, 107.8 for
rtdetr-l-FocalModulation at 640) divided by the median time. That rate is compared with the
GFLOP/s of an n x n float32 matmul measured in the same process.

The machine may be shared, so load can change while the script runs. Each timed forward is
therefore paired with a matmul timing taken right before it, the fraction of matmul rate is
computed per pair, and the table shows medians over the pairs.

Every model is timed in its own subprocess. With `--upstream DIR` (a folder holding an unpacked
upstream `ultralytics` wheel, e.g. `pip download --no-deps ultralytics==8.3.50 -d /tmp/whl` then
unzip it into DIR) the same measurement also runs on upstream's build of each stock yaml, so the
two implementations can be compared under the same conditions. Upstream runs offline (YOLO_OFFLINE)
with a throw-away HOME and config folder, builds from yaml only and downloads nothing.

    python benchmarks/forward_speed.py
    python benchmarks/forward_speed.py --threads 1 --repeats 7
    python benchmarks/forward_speed.py --upstream /tmp/upstream

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

from machine import cpu_name, load_average  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
MODES = ("unfused", "fused", "fused-channels_last", "fused-bf16", "fused-bf16-channels_last")
BASELINE_MODE = "fused"  # upstream's float32 prediction forward, the denominator of the speed-up table
RESULT_TAG = "FORWARD_SPEED_RESULT "  # prefix of the one stdout line a worker reports on




def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        nargs="+",
        default=["rtdetr-l-FocalModulation.yaml", "rtdetr-l.yaml"],
        help="model yamls to time, each in its own subprocess",
    )
    parser.add_argument("--imgsz", type=int, default=640, help="square input side, a multiple of 32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per mode (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards per mode first")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch.set_num_threads for every run; 0 keeps torch's default",
    )
    parser.add_argument("--matmul", type=int, default=2048, help="side n of the n x n float32 matmul reference")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=["unfused", "fused"],
        help="fused-channels_last: fused model and input in torch.channels_last; fused-bf16: under CPU "
        "bfloat16 autocast (what half=True runs on a CPU with AVX512-BF16/AMX), fraction taken of a bf16 matmul",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per implementation, ours and upstream alternating; tables show medians over the rounds",
    )
    parser.add_argument(
        "--upstream",
        type=Path,
        default=None,
        help="folder with upstream's unpacked `ultralytics` package: also time upstream's build of each yaml",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: "<label>", one model
    opt = parser.parse_args(argv)
    if opt.imgsz < 32 or opt.imgsz % 32:
        parser.error(f"--imgsz must be a positive multiple of 32 (RT-DETR's largest stride), got {opt.imgsz}")
    for name in ("batch", "repeats", "matmul", "rounds"):
        if getattr(opt, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(opt, name)}")
    if opt.warmup < 0 or opt.threads < 0:
        parser.error("--warmup and --threads must be >= 0")
    if opt.upstream is not None and not (opt.upstream / "ultralytics" / "__init__.py").is_file():
        parser.error(
            f"--upstream {opt.upstream}: no ultralytics/__init__.py there; unzip upstream's wheel into that folder"
        )
    return opt


# ----------------------------------------------------------------------------------------------
# worker: runs in a subprocess whose `import ultralytics` is the implementation being measured
# ----------------------------------------------------------------------------------------------


def _matmul_seconds(a, b) -> float:
    """Wall time of one a @ b (on CPU the call returns when the product is done)."""
    t0 = time.perf_counter()
    a @ b
    return time.perf_counter() - t0


def _thop_gflops(model, imgsz: int) -> float:
    """Twice thop's multiply-accumulates for one 3 x imgsz x imgsz image (as `model.info()` counts)."""
    import thop
    import torch

    clone = deepcopy(model).float().eval()
    with torch.no_grad():
        macs = thop.profile(clone, inputs=[torch.zeros(1, 3, imgsz, imgsz)], verbose=False)[0]
    return 2 * macs / 1e9


def _time_mode(
    opt: argparse.Namespace,
    model,
    x,
    matmul: tuple,
    mode: str,
    gflops: float,
) -> dict:
    """Median forward time of `model` in `mode`, each forward paired with a matmul in the mode's dtype."""
    import contextlib

    import torch

    bf16 = "bf16" in mode
    layout = torch.channels_last if mode.endswith("channels_last") else torch.contiguous_format
    model.to(memory_format=layout)
    inp = x.contiguous(memory_format=layout)
    a, b = (m.bfloat16() for m in matmul) if bf16 else matmul
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    matmul_gflop = 2 * opt.matmul**3 / 1e9
    forward_s, matmul_rate = [], []
    with autocast:
        for _ in range(opt.warmup):
            model(inp)
        for _ in range(opt.repeats):
            matmul_rate.append(matmul_gflop / _matmul_seconds(a, b))
            t0 = time.perf_counter()
            model(inp)
            forward_s.append(time.perf_counter() - t0)
    fraction = [gflops / t / m for t, m in zip(forward_s, matmul_rate)]
    return {
        "forward_s": statistics.median(forward_s),
        "matmul_gflops": statistics.median(matmul_rate),
        "matmul_dtype": "bfloat16" if bf16 else "float32",
        "fraction": statistics.median(fraction),
    }


def run_worker(opt: argparse.Namespace) -> dict:
    """Time one model in this process; only APIs shared with upstream 8.3.50 are used."""
    import torch

    import ultralytics
    from ultralytics.nn.tasks import RTDETRDetectionModel

    if opt.threads:
        torch.set_num_threads(opt.threads)
    torch.manual_seed(0)
    model = RTDETRDetectionModel(opt.model[0], verbose=False).eval()
    gflops = _thop_gflops(model, opt.imgsz) * opt.batch
    x = torch.rand(opt.batch, 3, opt.imgsz, opt.imgsz)
    a = torch.randn(opt.matmul, opt.matmul)
    b = torch.randn(opt.matmul, opt.matmul)

    results = {}
    with torch.inference_mode():
        for _ in range(2):
            a @ b
        for mode in MODES:  # in this order: fusing is one-way
            if mode == "fused":
                model.fuse(verbose=False)
            if mode in opt.modes:
                results[mode] = _time_mode(opt, model, x, (a, b), mode, gflops)
    return {
        "label": opt.worker,
        "package": str(Path(ultralytics.__file__).parent),
        "version": getattr(ultralytics, "__version__", "?"),
        "model": opt.model[0],
        "gflops": gflops,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "modes": results,
    }


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def _worker_args(opt: argparse.Namespace, model: str, label: str, modes: list[str]) -> list[str]:
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        label,
        "--model",
        model,
        "--imgsz",
        str(opt.imgsz),
        "--batch",
        str(opt.batch),
        "--repeats",
        str(opt.repeats),
        "--warmup",
        str(opt.warmup),
        "--threads",
        str(opt.threads),
        "--matmul",
        str(opt.matmul),
        "--modes",
        *modes,
    ]
    return args


def spawn(
    opt: argparse.Namespace,
    model: str,
    label: str,
    package_root: Path,
    home: Path | None,
    modes: list[str],
) -> dict:
    """Run one worker with `package_root` first on PYTHONPATH and return its result dict."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if home is not None:
        # upstream writes a settings file under the user's config folder and may try the network
        env.update(HOME=str(home), YOLO_CONFIG_DIR=str(home), YOLO_OFFLINE="true")
    proc = subprocess.run(_worker_args(opt, model, label, modes), env=env, capture_output=True, text=True, cwd=home or REPO)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(
        f"the {label} run of {model} (package {package_root}) failed with exit code {proc.returncode}:\n"
        f"{proc.stderr[-3000:]}"
    )




def source_revision() -> str:
    """Short git commit of this checkout, with '+changes' when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "ultralytics"], cwd=REPO).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {head}" + (" +changes" if dirty else "")


def merge_rounds(rounds: list[dict]) -> dict:
    """One implementation's runs of one model, merged: per mode the medians over the rounds."""
    merged = dict(rounds[0])
    merged["modes"] = {
        mode: {
            key: statistics.median(r["modes"][mode][key] for r in rounds) if key != "matmul_dtype" else first[key]
            for key, _ in first.items()
        }
        for mode, first in rounds[0]["modes"].items()
    }
    merged["rounds"] = rounds
    return merged


def _results_table(results: list[dict]) -> list[str]:
    lines = [
        "| implementation | model | mode | GFLOPs | median forward (ms) | effective GFLOP/s | matmul GFLOP/s "
        "| fraction of matmul |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for mode, m in r["modes"].items():
            lines.append(
                f"| {r['label']} | {Path(r['model']).stem} | {mode} | {r['gflops']:.1f} | {1000 * m['forward_s']:.0f} | "
                f"{r['gflops'] / m['forward_s']:.1f} | {m['matmul_gflops']:.1f} ({m['matmul_dtype']}) | "
                f"{m['fraction']:.2f} |"
            )
    return lines


def _against_upstream_float32(ours: dict, upstream: dict) -> list[str]:
    """Per mode of ours: time / upstream's fused float32 time, median of the per-round ratios."""
    rows = []
    base = [u["modes"][BASELINE_MODE]["forward_s"] for u in upstream["rounds"]]
    for mode in ours["modes"]:
        ratios = [o["modes"][mode]["forward_s"] / b for o, b in zip(ours["rounds"], base)]
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        rows.append(f"| {Path(ours['model']).stem} | {mode} | {statistics.median(ratios):.2f} | {per_round} |")
    return rows


def markdown(results: list[dict], opt: argparse.Namespace, load_before: str) -> str:
    """The results as a markdown table, plus our time against upstream's float32 where both were measured."""
    first = results[0]
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    lines = [
        f"ours: {source_revision()}. "
        f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; torch {first['torch']}, {first['threads']} threads, "
        f"OMP_WAIT_POLICY {wait_policy}; 1-minute load average {load_before} before, {load_average()} after; "
        f"input {opt.batch}x3x{opt.imgsz}x{opt.imgsz}; reference {opt.matmul}x{opt.matmul} matmul in each mode's "
        f"dtype; {opt.warmup} warm-up + median of {opt.repeats} forwards under torch.inference_mode(), "
        f"median over {opt.rounds} round(s), ours and upstream alternating.",
        "",
        *_results_table(results),
    ]
    upstream = {r["model"]: r for r in results if r["label"] == "upstream" and BASELINE_MODE in r["modes"]}
    ratios = [
        row
        for r in results
        if r["label"] == "ours" and r["model"] in upstream
        for row in _against_upstream_float32(r, upstream[r["model"]])
    ]
    if ratios:
        lines += [
            "",
            f"Our time against upstream's float32 `{BASELINE_MODE}` forward of the same yaml (below 1: ours is "
            "faster), as the median of the per-round ratios.",
            "",
            "| model | our mode | our time / upstream float32 time | per round |",
            "|---|---|---:|---|",
            *ratios,
        ]
    return "\n".join(lines)


def _our_yaml(model: str) -> str:
    """A yaml name of ours as an absolute path (a path is kept as given)."""
    shipped = REPO / "ultralytics" / "cfg" / "models" / "rt-detr" / Path(model).name
    return model if Path(model).is_file() or not shipped.is_file() else str(shipped)


def _time_model(opt: argparse.Namespace, model: str, home: Path) -> list[dict]:
    """Ours (every mode) and upstream (its float32 modes) on one yaml, alternating for opt.rounds rounds."""
    model = _our_yaml(model)  # by path: upstream's package ships only the stock yamls
    runs: dict[str, list[dict]] = {"ours": []}
    if opt.upstream is not None:
        runs["upstream"] = []
    upstream_modes = sorted({BASELINE_MODE, *(m for m in opt.modes if "bf16" not in m)}, key=MODES.index)
    for r in range(opt.rounds):
        for label in list(runs):
            print(f"round {r + 1}/{opt.rounds}: {label} {model} ...", file=sys.stderr, flush=True)
            if label == "ours":
                runs[label].append(spawn(opt, model, label, REPO, None, opt.modes))
                continue
            try:
                runs[label].append(spawn(opt, model, label, opt.upstream.resolve(), home, upstream_modes))
            except RuntimeError as e:
                # an upstream without the article's edits cannot build the FocalModulation yamls
                print(f"upstream skipped for {model}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
                del runs[label]
    return [merge_rounds(label_runs) for label_runs in runs.values() if label_runs]


def main(argv: list[str] | None = None) -> None:
    opt = parse_args(argv)
    if opt.worker is not None:
        print(RESULT_TAG + json.dumps(run_worker(opt)), flush=True)
        return

    results = []
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="forward_speed_") as tmp:
        for model in opt.model:
            results += _time_model(opt, model, Path(tmp))
    print(markdown(results, opt, load_before))


if __name__ == "__main__":
    main()
