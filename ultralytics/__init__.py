"""RT-DETR detectors (with the article's FocalModulation variant) in an Ultralytics 8.3 layout."""

__version__ = "8.3.50"

__all__ = "__version__", "RTDETR"


def __getattr__(name: str):
    # Imported on first use so that `import ultralytics.utils` stays light and free of cycles.
    if name == "RTDETR":
        from ultralytics.models import RTDETR

        return RTDETR
    raise AttributeError(f"module 'ultralytics' has no attribute '{name}'")
