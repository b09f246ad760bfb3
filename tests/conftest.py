"""Shared pytest fixtures: the shared/ reference folder, log capture and one big model per session."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FOCAL_YAML = "rtdetr-l-FocalModulation.yaml"

# Two cores in CI: more threads than cores only adds contention.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared/ folder beside the repository (absent in users' clones)."""
    if not SHARED.is_dir():
        pytest.skip(f"reference data folder {SHARED} is absent (it exists only beside the project's own checkout)")
    return SHARED


@pytest.fixture
def log_text():
    """Collects what the package logger prints while the test runs; call it to read the text."""
    from ultralytics.utils import LOGGER

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    yield stream.getvalue
    LOGGER.removeHandler(handler)


@pytest.fixture(scope="session")
def focal_model():
    """rtdetr-l-FocalModulation built once per test session (takes a few seconds); do not modify it."""
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    return RTDETRDetectionModel(FOCAL_YAML, verbose=False)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep datasets and runs that tests create out of the working tree."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("ULTRALYTICS_DATASETS_DIR", str(root / "datasets"))
    monkeypatch.setenv("ULTRALYTICS_RUNS_DIR", str(root / "runs"))
