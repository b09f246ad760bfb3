"""RT-DETR detectors (with the article's FocalModulation variant) in an Ultralytics 8.3 layout."""

__version__ = "8.3.50"

import importlib
import os

# Upstream's default: one OpenMP thread per process unless the user chose otherwise. It must be set
# before torch is first imported; on a shared CPU, spinning OpenMP threads otherwise wait for each
# other after every op (measured 2-5x slower, see docs/benchmarks.md).
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or "1"

__all__ = "__version__", "RTDETR", "ASSETS", "settings", "checks"

# Public names imported on first use, so that `import ultralytics.utils` stays light and free of cycles:
# name -> (module, attribute there).
_LAZY = {
    "RTDETR": ("ultralytics.models", "RTDETR"),
    "ASSETS": ("ultralytics.utils", "ASSETS"),  # the bundled sample images
    "settings": ("ultralytics.utils", "settings"),  # upstream's settings.json (datasets, weights, runs, loggers)
    "checks": ("ultralytics.utils.checks", "check_yolo"),  # upstream's ultralytics.checks(): system summary
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ultralytics' has no attribute '{name}'")
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)
