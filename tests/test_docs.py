"""The docs/ pages against the code: links and paths, the AddModules worked example, quoted
defaults, numbers and commands."""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from ultralytics.nn.modules.yaml_args import YamlArgs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))

# Files the docs tell the reader to create; they are not part of the repository.
USER_CREATED = {"ultralytics/nn/AddModules/ChannelGate.py", "rtdetr-l-ChannelGate.yaml"}
REPO_PATH = re.compile(r"^(ultralytics|docs|tests|examples|benchmarks|\.ci)/[\w.\-/]*$|^(setup\.py|README\.md)$")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


# The worked example of docs/add_modules.md, kept textually identical to its code block.
class ChannelGate(nn.Module):
    """Scale every channel by a weight in (0, 1) computed from all channels' spatial means.

    Input and output are (B, c1, H, W). Yaml args after the input channels: [reduction].
    """

    yaml_args = YamlArgs("same")  # parse_model prepends the input channels; width is unchanged

    def __init__(self, c1: int, reduction: int = 4):
        super().__init__()
        hidden = max(c1 // reduction, 1)
        self.fc1 = nn.Conv2d(c1, hidden, kernel_size=1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, c1, kernel_size=1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)  # (B, c1, 1, 1)
        w = self.gate(self.fc2(self.act(self.fc1(w))))
        return x * w


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _blocks(text: str, lang: str | None = None) -> list[str]:
    """Fenced code blocks, optionally only those of one language."""
    return [body for fence_lang, body in FENCE.findall(text) if lang is None or fence_lang == lang]


def _prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+\s+(.+)$", _prose(text), re.M)}


def _section(text: str, heading: str) -> str:
    """From a heading line to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{level}}}\s", rest, re.M)
    return rest[: end.start()] if end else rest


# ----------------------------------------------------------------------------------------------
# Links and paths
# ----------------------------------------------------------------------------------------------
def test_docs_pages_exist():
    names = {p.name for p in PAGES}
    assert {"index.md", "quickstart.md", "focal_modulation.md", "add_modules.md", "reference.md", "datasets.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(_prose(text)):
        if re.match(r"^[a-z]+://|^mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: link '{target}' points to missing {dest}"
        if anchor:
            assert anchor in _anchors(dest.read_text(encoding="utf-8")), f"{page.name}: no heading for '#{anchor}' in {dest.name}"


def test_index_links_every_page():
    linked = {t.partition("#")[0] for t in LINK.findall(_read("index.md"))}
    missing = {p.name for p in PAGES} - linked - {"index.md"}
    assert not missing, f"docs/index.md does not link {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_backticked_repository_paths_exist(page):
    spans = re.findall(r"`([^`\n]+)`", _prose(page.read_text(encoding="utf-8")))
    paths = [s for s in spans if REPO_PATH.match(s) and s not in USER_CREATED]
    for p in paths:
        assert (REPO / p).exists(), f"{page.name}: `{p}` does not exist in the repository"


def test_environment_variables_exist_in_the_package():
    source = "".join(f.read_text(encoding="utf-8") for f in (REPO / "ultralytics").rglob("*.py"))
    named = {v for page in PAGES for v in re.findall(r"\bULTRALYTICS_[A-Z_]+\b", page.read_text(encoding="utf-8"))}
    assert named
    assert not {v for v in named if f'"{v}"' not in source}, "docs name environment variables the package never reads"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_model_yaml_names_are_shipped(page):
    shipped = {p.name for p in (REPO / "ultralytics/cfg/models").rglob("*.yaml")}
    names = set(re.findall(r"\b(rtdetr-[\w\-]+\.yaml)\b", page.read_text(encoding="utf-8")))
    unknown = names - shipped - USER_CREATED
    assert not unknown, f"{page.name} names model yamls that are not shipped: {sorted(unknown)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_are_valid_python(page):
    for block in _blocks(page.read_text(encoding="utf-8"), "python"):
        code = textwrap.dedent(block)  # snippets quoted from inside a function are indented
        if code.startswith("elif "):
            code = "if False:\n    pass\n" + code  # a branch quoted without its `if`
        ast.parse(code)


# ----------------------------------------------------------------------------------------------
# The AddModules worked example
# ----------------------------------------------------------------------------------------------
def _example_code() -> str:
    blocks = [b for b in _blocks(_read("add_modules.md"), "python") if "class ChannelGate" in b]
    assert len(blocks) == 1, "docs/add_modules.md should show the ChannelGate module in one python block"
    return blocks[0]


def test_add_module_example_code_matches_test_class():
    code = _example_code()
    shown = code[code.index("class ChannelGate") :].rstrip()
    assert shown == inspect.getsource(ChannelGate).rstrip()
    # The file as shown must also work on its own (its imports, its __all__).
    namespace: dict = {}
    exec(compile(code, "ChannelGate.py", "exec"), namespace)
    assert namespace["__all__"] == ("ChannelGate",)
    assert namespace["ChannelGate"].yaml_args == YamlArgs("same")


def test_add_module_example_yaml_builds_and_runs(tmp_path, monkeypatch):
    from ultralytics.nn import tasks

    text = _read("add_modules.md")
    (yaml_text,) = _blocks(text, "yaml")
    cfg = tmp_path / "rtdetr-l-ChannelGate.yaml"
    cfg.write_text(yaml_text, encoding="utf-8")
    # The package registers every nn.Module exported by AddModules/__init__.py in MODULES.
    monkeypatch.setitem(tasks.MODULES, "ChannelGate", ChannelGate)

    torch.manual_seed(0)
    model = tasks.RTDETRDetectionModel(str(cfg), verbose=False).eval()
    gate = model.model[11]
    assert isinstance(gate, ChannelGate) and gate.fc1.in_channels == 256 and gate.fc1.out_channels == 64

    row = re.search(r"^ 11 +-1 +1 +(\d+) +ultralytics\.nn\.AddModules\.ChannelGate\.ChannelGate(\[.*\])", text, re.M)
    assert row, "docs/add_modules.md should show layer 11's table row"
    assert int(row.group(1)) == gate.np == sum(p.numel() for p in gate.parameters())
    assert ast.literal_eval(row.group(2)) == [256, 4]

    summary = re.search(r"rtdetr-l-ChannelGate summary: (\d+) layers, ([\d,]+) parameters", text)
    assert int(summary.group(1)) == len(list(model.modules()))
    assert int(summary.group(2).replace(",", "")) == sum(p.numel() for p in model.parameters())

    with torch.no_grad():
        y, _ = model(torch.rand(1, 3, 64, 64))
    assert y.shape == (1, 300, 4 + 1)
    assert torch.isfinite(y).all()

    # Checkpoints: loadable while the class lives under ultralytics.nn.AddModules, refused with a
    # message naming it once it is gone (the page's "Checkpoints of models with your module").
    module = types.ModuleType("ultralytics.nn.AddModules.ChannelGate")
    module.ChannelGate = type("ChannelGate", (ChannelGate,), {"__module__": module.__name__})
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for m in model.modules():
        if isinstance(m, ChannelGate):
            m.__class__ = module.ChannelGate
    ckpt = tmp_path / "best.pt"
    torch.save({"model": model.half(), "train_args": {}}, ckpt)
    loaded, _ = tasks.attempt_load_one_weight(ckpt)
    assert type(loaded.model[11]) is module.ChannelGate
    monkeypatch.delitem(sys.modules, module.__name__)
    with pytest.raises(tasks.CheckpointError, match=r"ultralytics\.nn\.AddModules\.ChannelGate\.ChannelGate"):
        tasks.attempt_load_one_weight(ckpt)


def test_add_module_without_declaration_gets_args_unchanged(tmp_path, monkeypatch):
    """What the page warns about: no yaml_args and no branch means ChannelGate(4) on 256 channels."""
    from ultralytics.nn import tasks

    undeclared = type("ChannelGate", (ChannelGate,), {"yaml_args": None})
    monkeypatch.setitem(tasks.MODULES, "ChannelGate", undeclared)
    d = yaml.safe_load(_blocks(_read("add_modules.md"), "yaml")[0])
    layers, _ = tasks.parse_model(d, ch=3, verbose=False)
    assert layers[11].fc1.in_channels == 4


# ----------------------------------------------------------------------------------------------
# The article's three edits, as quoted
# ----------------------------------------------------------------------------------------------
def test_quoted_edits_exist_in_our_files():
    from ultralytics.nn.AddModules import FocalModulation

    section = _section(_read("focal_modulation.md"), "## The three edits")
    signature, init_line, *task_lines = _blocks(section, "python")

    call = ast.parse(signature).body[0].value
    params = inspect.signature(FocalModulation).parameters
    assert [a.id for a in call.args] == ["dim"] and list(params)[0] == "dim"
    assert {k.arg: ast.literal_eval(k.value) for k in call.keywords} == {
        k: p.default for k, p in params.items() if k != "dim"
    }

    init_file = (REPO / "ultralytics/nn/AddModules/__init__.py").read_text(encoding="utf-8")
    assert init_line.strip() in init_file.splitlines()

    tasks_lines = {line.strip() for line in (REPO / "ultralytics/nn/tasks.py").read_text(encoding="utf-8").splitlines()}
    for block in task_lines:
        for line in block.strip().splitlines():
            assert line.strip() in tasks_lines, f"quoted line not in ultralytics/nn/tasks.py: {line.strip()}"


def test_focal_modulation_argument_table():
    from ultralytics.nn.AddModules import FocalModulation

    text = _read("focal_modulation.md")
    rows = re.findall(r"^\| `\[-1, 1, FocalModulation, (\[.*?\])\]`.*?\| ([\d, ]+) \| ([\d,]+) \|$", text, re.M)
    assert len(rows) >= 4
    for args, kernels, n_params in rows:
        m = FocalModulation(256, *ast.literal_eval(args))
        assert m.kernel_sizes == [int(k) for k in kernels.split(",")], args
        assert sum(p.numel() for p in m.parameters()) == int(n_params.replace(",", "")), args

    params = list(inspect.signature(FocalModulation).parameters.values())
    table = re.findall(r"^\| (?:\d+|\(filled in\)) \| `(\w+)` \| ([^|]+) \|", text, re.M)
    assert [name for name, _ in table] == [p.name for p in params]
    for (name, default), p in zip(table[1:], params[1:]):  # dim has no default
        assert ast.literal_eval(default.strip().strip("`")) == p.default, name


def test_shipped_variant_counts():
    from ultralytics.nn.tasks import RTDETRDetectionModel

    rows = re.findall(r"^\| `(rtdetr-[\w\-]+\.yaml)`.*?\| (\d+) \| (\d+) \| ([\d,]+) \| [\d.]+ \|$", _read("focal_modulation.md"), re.M)
    assert len(rows) == len(list((REPO / "ultralytics/cfg/models/rt-detr").glob("*.yaml")))
    for name, nc, n_layers, n_params in rows:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = RTDETRDetectionModel(name, verbose=False)
        assert model.yaml["nc"] == int(nc), name
        assert len(list(model.modules())) == int(n_layers), name
        assert sum(p.numel() for p in model.parameters()) == int(n_params.replace(",", "")), name


# ----------------------------------------------------------------------------------------------
# Reference: defaults and commands
# ----------------------------------------------------------------------------------------------
def _documented_defaults() -> list[tuple[str, str]]:
    section = _section(_read("reference.md"), "## Settings")
    return re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.M)


def test_reference_lists_every_setting_once_with_its_default():
    raw = yaml.safe_load((REPO / "ultralytics/cfg/default.yaml").read_text(encoding="utf-8"))

    def norm(v):
        return None if isinstance(v, str) and v.lower() == "none" else v

    documented = _documented_defaults()
    keys = [k for k, _ in documented]
    assert len(keys) == len(set(keys)), "a setting is listed twice"
    assert set(keys) == set(raw), f"missing {sorted(set(raw) - set(keys))}, unknown {sorted(set(keys) - set(raw))}"
    for key, shown in documented:
        value = norm(yaml.safe_load(shown))
        assert value == norm(raw[key]) and type(value) is type(norm(raw[key])), f"{key}: docs say {shown!r}, default.yaml has {raw[key]!r}"


def test_reference_checked_type_lists_match_cfg():
    from ultralytics import cfg

    section = _section(_read("reference.md"), "### Checked types")
    expected = {
        "a number in [0, 1]": cfg.CFG_FRACTION_KEYS,
        "an int": cfg.CFG_INT_KEYS,
        "an int or a float": cfg.CFG_FLOAT_KEYS,
        "`True` or `False`": cfg.CFG_BOOL_KEYS,
    }
    for label, keys in expected.items():
        line = re.search(rf"^- {re.escape(label)}: (.+)$", section, re.M)
        assert line, f"no list for '{label}'"
        assert set(re.findall(r"`(\w+)`", line.group(1))) == set(keys), label


def _yolo_commands(page: str) -> list[str]:
    lines = [ln.strip() for b in _blocks(_read(page), "bash") for ln in b.splitlines()]
    return [ln for ln in lines if ln.startswith("yolo ")]


@pytest.mark.parametrize("command", _yolo_commands("quickstart.md") + _yolo_commands("reference.md"))
def test_documented_yolo_commands_parse(command):
    from ultralytics import cfg
    from ultralytics.cfg import _parse_cli, _resolve_command, get_cfg
    from ultralytics.utils import DEFAULT_CFG_DICT

    words = shlex.split(command.split("#")[0])
    overrides, special = _parse_cli(words[1:])
    assert special is None
    mode, _, _ = _resolve_command(overrides)
    assert mode in cfg.SUPPORTED_MODES
    # Keys of one mode only (tune's iterations) are no default.yaml setting; the CLI sets them aside too.
    settings = {k: v for k, v in overrides.items() if k not in cfg.MODE_ONLY_KEYS.get(mode, {})}
    get_cfg(DEFAULT_CFG_DICT, settings)  # raises on any unknown key or bad value


def test_quickstart_has_a_command_per_mode():
    modes = {c.split()[1] for c in _yolo_commands("quickstart.md")}
    assert modes == {"train", "val", "predict", "export"}


def test_documented_cli_errors_are_real(log_text):
    from ultralytics.cfg import entrypoint

    examples = re.findall(r"^\$ (yolo .+)\n(yolo: error: .+)$", _read("reference.md"), re.M)
    assert len(examples) >= 4
    for command, message in examples:
        with pytest.raises(SystemExit) as exc:
            entrypoint(command)
        assert exc.value.code == 2, command
        expected = message.split("...")[0].rstrip()
        assert expected in log_text(), f"{command}: expected '{expected}'"
