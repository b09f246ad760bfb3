"""Issue 8, point 5: malformed model yaml rows and top-level keys get messages that say what to write.

Each row error names the layer, the module and its yaml rule, and quotes a correct row; on the command
line it is a one-paragraph error with exit status 2 and nothing written.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest
import torch.nn as nn
import yaml

from ultralytics.cfg import entrypoint
from ultralytics.nn.modules import Conv, RepConv
from ultralytics.nn.tasks import ModelYamlError, RTDETRDetectionModel, parse_model, yaml_model_load

TINY = Path(__file__).parent / "fixtures" / "rtdetr-tiny-FocalModulation.yaml"
N_BACKBONE = 6  # rows 0-5 of the tiny yaml are its backbone


def _tiny_with(index: int, row) -> dict:
    spec = yaml_model_load(TINY)
    rows = spec["backbone"] + spec["head"]
    rows[index] = row
    spec["backbone"], spec["head"] = rows[:N_BACKBONE], rows[N_BACKBONE:]
    return spec


def _example_row(message: str) -> list:
    """The last row the message quotes after 'A correct row:', read back as yaml."""
    quoted = message.split("A correct row: ")[1].split(" followed by ")[-1]
    return yaml.safe_load(quoted)


BAD_ROWS = [
    # (layer, row, module, rule, what the message says is wrong)
    (5, [-1, 1, "Conv", []], "Conv", "'out'", "needs at least 1 arg, got []"),
    (10, [-1, 1, "Concat", [1]], "Concat", "'sum'", "'from' must be a list of layer indices, not the single index -1"),
    (12, [11, 1, "RTDETRDecoder", ["nc"]], "RTDETRDecoder", "'decoder'", "not the single index 11"),
    (5, [-1, 1, "Conv", 64], "Conv", "'out'", "takes its args as a list, got 64 (int)"),
    (6, [-1, 1, "Conv", "[16, 1]"], "Conv", "'out'", "takes its args as a list, got '[16, 1]' (str)"),
    (0, [-1, 1, "HGStem", [8]], "HGStem", "'mid_out'", "needs at least 2 args, got [8]"),
    (5, [[-1, 3], 1, "Conv", [32, 3, 2]], "Conv", "'out'", "'from' must be a single layer index, not the list [-1, 3]"),
    (7, [[-1, 5], 1, "FocalModulation", []], "FocalModulation", "'same'", "not the list [-1, 5]"),
    (12, [[3, 11, 8], 1, "RTDETRDecoder", []], "RTDETRDecoder", "'decoder'", "needs at least 1 arg"),
]


@pytest.mark.parametrize("layer, row, module, rule, problem", BAD_ROWS)
def test_bad_row_names_layer_module_rule_and_a_correct_row(layer, row, module, rule, problem):
    with pytest.raises(ModelYamlError) as e:
        parse_model(_tiny_with(layer, row), ch=3, verbose=False)
    message = str(e.value)
    assert message.startswith(f"layer {layer}: {module} ")
    assert problem in message
    assert f"Its yaml rule is {rule}: " in message
    example = _example_row(message)
    assert len(example) == 4 and example[2] == module and isinstance(example[3], list)


def test_the_quoted_example_rows_fit_their_rules():
    """Each example row, put where the tiny model has that kind of layer, builds."""
    for layer, row, *_ in BAD_ROWS[:3] + BAD_ROWS[5:6]:
        with pytest.raises(ModelYamlError) as e:
            parse_model(_tiny_with(layer, row), ch=3, verbose=False)
        f, n, module, args = _example_row(str(e.value))
        f = [-1, 4] if module == "Concat" else [3, 11, 8] if module == "RTDETRDecoder" else f
        parse_model(_tiny_with(layer, [f, n, module, args]), ch=3, verbose=False)


def test_module_without_rules_reading_a_list_is_refused_instead_of_guessing_a_width():
    # Before, nn.Identity here silently kept the width of the layer before it (16, not 16 + 32).
    with pytest.raises(ModelYamlError) as e:
        parse_model(_tiny_with(9, [[-1, 4], 1, "nn.Identity", []]), ch=3, verbose=False)
    message = str(e.value)
    assert message.startswith("layer 9: nn.Identity reads the list 'from' [-1, 4]")
    assert "Its yaml rule is none declared" in message and 'YamlArgs("sum")' in message
    assert _example_row(message) == [-1, 1, "nn.Identity", []]


def test_wrong_argument_count_also_quotes_the_rule():
    with pytest.raises(ModelYamlError, match=r"layer 7: FocalModulation cannot take .* rule is 'same'.* \[-1, 1, FocalModulation, \[\]\]"):
        parse_model(_tiny_with(7, [-1, 1, "FocalModulation", [1, 2, 3, 4, 5, 6, 7, 8]]), ch=3, verbose=False)


def test_rows_are_checked_before_any_layer_is_built(log_text):
    with pytest.raises(ModelYamlError, match="layer 12"):
        parse_model(_tiny_with(12, [11, 1, "RTDETRDecoder", ["nc"]]), ch=3, verbose=True)
    assert "HGStem" not in log_text(), "no table rows are printed for a yaml that cannot be built"


@pytest.mark.parametrize(
    "text, problem",
    [("nc: 3\nbackbone: [\n", "is not valid YAML"), ("- [-1, 1, Conv, [8]]\n", "must be a mapping")],
)
def test_unreadable_yaml_file(tmp_path, text, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ModelYamlError, match=problem):
        yaml_model_load(path)


def _write_bad_yaml(folder: Path) -> Path:
    text = TINY.read_text().replace("[-1, 1, Conv, [32, 3, 2]] # 5-P5/32", "[-1, 1, Conv, []] # 5-P5/32")
    assert text != TINY.read_text()
    path = folder / "bad.yaml"
    path.write_text(text)
    return path


def test_cli_bad_row_is_one_paragraph_exit_2_and_writes_nothing(tmp_path, monkeypatch, log_text):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ULTRALYTICS_RUNS_DIR", str(tmp_path / "runs"))
    bad = _write_bad_yaml(tmp_path)
    with pytest.raises(SystemExit) as e:
        entrypoint(f"yolo train model={bad} data=shapes.yaml epochs=1 imgsz=64 device=cpu")
    assert e.value.code == 2
    out = log_text()
    error = out[out.index("yolo: error:") :].strip().splitlines()
    assert error[0].startswith("yolo: error: layer 5: Conv needs at least 1 arg") and "A correct row:" in error[0]
    assert error[1:] == ["Run 'yolo help' for usage."]
    assert "Traceback" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "no run folder, cache or dataset written"


# ----------------------------------------------------------------------------------------------
# Top-level keys
# ----------------------------------------------------------------------------------------------
def _tiny_with_key(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "keyed.yaml"
    path.write_text(f"{line}\n{TINY.read_text()}")
    return path


def _conv_activations(model) -> collections.Counter:
    return collections.Counter(type(m.act).__name__ for m in model.modules() if isinstance(m, Conv))


def test_act_key_sets_the_default_activation_of_conv_for_this_model_only(tmp_path):
    plain = _conv_activations(RTDETRDetectionModel(str(TINY), verbose=False))
    relu = _conv_activations(RTDETRDetectionModel(str(_tiny_with_key(tmp_path, "act: nn.ReLU()")), verbose=False))
    # The tiny model's Convs built with act=True (3 of them) switch from SiLU; explicit acts stay.
    assert plain["SiLU"] == 3 and relu["SiLU"] == 0
    assert relu["ReLU"] == plain["ReLU"] + 3 and relu["Identity"] == plain["Identity"]
    assert type(Conv.default_act) is nn.SiLU, "the class default is restored after the build"
    assert _conv_activations(RTDETRDetectionModel(str(TINY), verbose=False)) == plain


def test_upstream_activation_key_with_arguments(tmp_path, log_text):
    model = RTDETRDetectionModel(str(_tiny_with_key(tmp_path, "activation: nn.LeakyReLU(0.1)")), verbose=True)
    leaky = [m.act for m in model.modules() if isinstance(m, Conv) and isinstance(m.act, nn.LeakyReLU)]
    assert len(leaky) == 3 and all(a.negative_slope == 0.1 for a in leaky)
    assert all(type(m.act) is nn.SiLU for m in model.modules() if isinstance(m, RepConv)), "RepConv keeps its own"
    assert re.search(r"activation:\S* nn\.LeakyReLU\(0\.1\)", log_text())


@pytest.mark.parametrize(
    "value, problem",
    [
        ("nn.Swish()", "is not an activation this package can build"),
        ("__import__('os').system('true')", "is not an activation this package can build"),
        ("nn.MultiheadAttention(8, 2)", "is not an activation this package can build"),
        ("nn.LeakyReLU(slope)", "the arguments must be literals"),
        ("nn.ReLU(1, 2, 3)", "nn.ReLU cannot be built from those arguments"),
    ],
)
def test_bad_activation_is_refused_without_evaluating_it(tmp_path, value, problem):
    with pytest.raises(ModelYamlError, match=re.escape(f"'act: {value}'") + ".*" + problem):
        RTDETRDetectionModel(str(_tiny_with_key(tmp_path, f'act: "{value}"')), verbose=False)


def test_unknown_top_level_key_warns_with_its_name(tmp_path, captured_log):
    with captured_log() as messages:
        RTDETRDetectionModel(str(_tiny_with_key(tmp_path, "depth_multiplier: 0.5")), verbose=False)
    warnings = [m for m in messages if "unknown top-level key" in m]
    assert len(warnings) == 1 and "['depth_multiplier']" in warnings[0] and "'depth_multiple'" in warnings[0]
    with captured_log() as messages:
        RTDETRDetectionModel(str(TINY), verbose=False)
    assert not [m for m in messages if "unknown top-level key" in m]
