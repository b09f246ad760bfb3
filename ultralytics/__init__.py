"""RT-DETR detectors (with the article's FocalModulation variant) in an Ultralytics 8.3 layout."""

__version__ = "8.3.50"

import os

# Upstream's default: one OpenMP thread per process unless the user chose otherwise. It must be set
# before torch is first imported; on a shared CPU, spinning OpenMP threads otherwise wait for each
# other after every op (measured 2-5x slower, see docs/benchmarks.md).
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or "1"

__all__ = "__version__", "RTDETR", "settings"


def __getattr__(name: str):
    # Imported on first use so that `import ultralytics.utils` stays light and free of cycles.
    if name == "RTDETR":
        from ultralytics.models import RTDETR

        return RTDETR
    if name == "settings":
        from ultralytics.utils import SETTINGS

        return SETTINGS
    raise AttributeError(f"module 'ultralytics' has no attribute '{name}'")
