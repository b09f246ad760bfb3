"""results.csv is written, read, trimmed and plotted through ultralytics.utils.results_csv."""

from __future__ import annotations

import math

import pytest

from ultralytics.utils import results_csv


def test_append_writes_header_once_with_time_second(tmp_path):
    path = tmp_path / "results.csv"
    results_csv.append(path, 1, {"train/giou_loss": 1.234567, "lr/pg0": 0.001}, elapsed=12.3456)
    results_csv.append(path, 2, {"train/giou_loss": 1.1, "lr/pg0": 0.002}, elapsed=25.0)
    lines = path.read_text().splitlines()
    assert lines == ["epoch,time,train/giou_loss,lr/pg0", "1,12.346,1.2346,0.001", "2,25,1.1,0.002"]
    table = results_csv.read(path)
    assert table == {"epoch": [1.0, 2.0], "time": [12.346, 25.0], "train/giou_loss": [1.2346, 1.1], "lr/pg0": [0.001, 0.002]}


def test_files_without_time_column_read_and_plot_the_same_columns(tmp_path):
    path = tmp_path / "results.csv"
    results_csv.append(path, 1, {"a": 1.0, "b": 2.0})
    header, values = results_csv.read_table(path)
    assert header == ["epoch", "a", "b"] and values.shape == (1, 3)
    assert [header[j] for j in results_csv.plotted_columns(header)] == ["a", "b"]
    assert results_csv.plotted_columns(["epoch", "time", "a", "b"]) == [2, 3]


def test_read_handles_missing_empty_and_blank_cells(tmp_path):
    assert results_csv.read(tmp_path / "absent.csv") == {}
    (tmp_path / "empty.csv").write_text("")
    assert results_csv.read(tmp_path / "empty.csv") == {}
    with pytest.raises(ValueError, match="empty"):
        results_csv.read_table(tmp_path / "empty.csv")
    (tmp_path / "gap.csv").write_text("epoch,a\n1,\n")
    assert math.isnan(results_csv.read(tmp_path / "gap.csv")["a"][0])


def test_trim_drops_rows_after_the_checkpoint_epoch(tmp_path):
    path = tmp_path / "results.csv"
    for epoch in (1, 2, 3):
        results_csv.append(path, epoch, {"a": float(epoch)}, elapsed=float(epoch))
    assert results_csv.trim(path, 2) == 1
    assert results_csv.read(path)["epoch"] == [1.0, 2.0]
    assert results_csv.trim(path, 2) == 0
    assert results_csv.trim(tmp_path / "absent.csv", 1) == 0
