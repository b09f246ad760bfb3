"""Issue 2 acceptance: the article's model builds, prints its summary and matches upstream's layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ultralytics import RTDETR
from ultralytics.nn.AddModules import FocalModulation
from ultralytics.nn.tasks import MODELS_DIR, ModelYamlError, RTDETRDetectionModel, parse_model, yaml_model_load

SHIPPED_YAMLS = sorted(p.name for p in MODELS_DIR.rglob("*.yaml"))


def _read_tsv(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines(True) if not line.startswith("#")]


def _fake_batch(bs: int, h: int, w: int, nc: int) -> dict:
    """Two boxes per image, normalised xywh, as the dataloader collates them."""
    g = torch.Generator().manual_seed(0)
    n = 2 * bs
    return {
        "img": torch.rand(bs, 3, h, w, generator=g),
        "cls": torch.randint(0, nc, (n, 1), generator=g).float(),
        "bboxes": torch.cat([torch.rand(n, 2, generator=g) * 0.5 + 0.25, torch.rand(n, 2, generator=g) * 0.3 + 0.1], 1),
        "batch_idx": torch.arange(bs).repeat_interleave(2).float(),
    }


# ----------------------------------------------------------------------------------------------
# The article's printed output
# ----------------------------------------------------------------------------------------------
def test_article_summary_and_table(log_text):
    RTDETRDetectionModel("rtdetr-l-FocalModulation.yaml", verbose=True)
    text = log_text()
    assert "rtdetr-l-FocalModulation summary: 683 layers, 32,291,014 parameters, 32,291,014 gradients, 107.8 GFLOPs" in text
    rows = {int(line.split()[0]): line for line in text.splitlines() if re.match(r"^\s*\d+\s", line)}
    assert sorted(rows) == list(range(29))
    # The long module path runs into the arguments column exactly as in the article.
    assert re.search(r"^ 11\s+-1\s+1\s+272643  ultralytics\.nn\.AddModules\.FocalModulation\.FocalModulation\[256\]", rows[11])
    assert re.search(r"^  0\s+-1\s+1\s+25248  ultralytics\.nn\.modules\.block\.HGStem\s+\[3, 32, 48\]", rows[0])
    assert re.search(r"^ 13\s+-1\s+1\s+0  torch\.nn\.modules\.upsampling\.Upsample\s+\[None, 2, 'nearest'\]", rows[13])
    assert re.search(
        r"^ 28\s+\[21, 24, 27\]\s+1\s+7303907  ultralytics\.nn\.modules\.head\.RTDETRDecoder\s+\[1, \[256, 256, 256\]\]",
        rows[28],
    )
    header = next(line for line in text.splitlines() if "arguments" in line)
    assert header.split() == ["from", "n", "params", "module", "arguments"]


def test_rtdetr_l_counts(log_text):
    model = RTDETRDetectionModel("rtdetr-l.yaml", verbose=False)
    layers, params, grads, flops = model.info()
    assert (layers, params, grads) == (681, 32_970_476, 32_970_476)
    assert "rtdetr-l summary: 681 layers, 32,970,476 parameters" in log_text()


@pytest.mark.parametrize("name", ["rtdetr-l-FocalModulation", "rtdetr-l"])
def test_module_tree_and_state_dict_match_upstream(shared_dir, name):
    model = RTDETRDetectionModel(f"{name}.yaml", verbose=False)
    tree = [[n, type(m).__name__] for n, m in model.named_modules()]
    assert tree == _read_tsv(shared_dir / "reference" / f"{name}.modules.tsv")
    keys = [[k, str(tuple(v.shape))] for k, v in model.state_dict().items()]
    assert keys == _read_tsv(shared_dir / "reference" / f"{name}.state_dict.tsv")


def test_wrapper_info_and_fuse(focal_model, log_text):
    model = RTDETR("rtdetr-l-FocalModulation.yaml")
    assert model.info()[:2] == (683, 32_291_014)
    model.fuse()
    assert "rtdetr-l-FocalModulation summary (fused):" in log_text()


# ----------------------------------------------------------------------------------------------
# FocalModulation: the article's function, its yaml arguments
# ----------------------------------------------------------------------------------------------
def test_focal_modulation_golden(shared_dir):
    cases = torch.load(shared_dir / "fixtures" / "focal_modulation_golden.pt", weights_only=False)
    assert len(cases) == 4
    assert any(c["kwargs"].get("use_postln_in_modulation") for c in cases)
    for case in cases:
        m = FocalModulation(case["dim"], **case["kwargs"]).eval()
        m.load_state_dict(case["state_dict"])
        with torch.no_grad():
            out = m(case["input"])
        torch.testing.assert_close(out, case["output"], atol=1e-5, rtol=0, msg=f"case {case['kwargs']}")


def test_focal_modulation_yaml_args_reach_constructor():
    d = yaml_model_load("rtdetr-l-FocalModulation.yaml")
    d["head"][1] = [-1, 1, "FocalModulation", [5, 3]]
    layers, _ = parse_model(d, ch=3, verbose=False)
    fm = layers[11]
    assert isinstance(fm, FocalModulation)
    assert (fm.dim, fm.focal_window, fm.focal_level, fm.kernel_sizes) == (256, 5, 3, [5, 7, 9])


def test_focal_modulation_post_ln_normalises_channels():
    torch.manual_seed(0)
    m = FocalModulation(8, use_postln_in_modulation=True).eval()
    m.proj = nn.Identity()  # read the normalised tensor directly
    with torch.no_grad():
        out = m(torch.randn(2, 8, 5, 7))
    assert out.shape == (2, 8, 5, 7)
    torch.testing.assert_close(out.mean(1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"focal_window": 4}, "odd"), ({"focal_factor": 1}, "odd"), ({"focal_level": -1}, "focal_level"), ({"proj_drop": 1.5}, "proj_drop")],
)
def test_focal_modulation_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalModulation(16, **kwargs)


# ----------------------------------------------------------------------------------------------
# Every shipped yaml: builds, trains, evaluates
# ----------------------------------------------------------------------------------------------
def test_shipped_yamls_are_complete():
    expected = {
        "rtdetr-l.yaml",
        "rtdetr-x.yaml",
        "rtdetr-resnet50.yaml",
        "rtdetr-resnet101.yaml",
        "rtdetr-l-FocalModulation.yaml",
        "rtdetr-x-FocalModulation.yaml",
        "rtdetr-resnet50-FocalModulation.yaml",
    }
    assert expected <= set(SHIPPED_YAMLS)
    assert yaml_model_load("rtdetr-l-FocalModulation.yaml")["nc"] == 1


@pytest.mark.parametrize("name", SHIPPED_YAMLS)
def test_every_yaml_trains_and_evaluates(name):
    torch.manual_seed(0)
    model = RTDETRDetectionModel(name, nc=3, verbose=False)
    nc = model.nc
    assert nc == 3
    for h, w in ((64, 64), (96, 160)):
        model.train()
        batch = _fake_batch(2, h, w, nc)
        loss, items = model.loss(batch)
        assert torch.isfinite(loss) and items.shape == (3,)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert len(grads) > 0.9 * sum(1 for _ in model.parameters())
        model.zero_grad(set_to_none=True)

        model.eval()
        with torch.no_grad():
            y, x = model(batch["img"])
        assert y.shape == (2, 300, 4 + nc)
        assert 0 <= y[..., :4].min() and y[..., :4].max() <= 1  # normalised xywh
        assert 0 <= y[..., 4:].min() and y[..., 4:].max() <= 1  # sigmoid scores
        assert isinstance(x, tuple) and len(x) == 5


def test_fuse_keeps_eval_outputs(focal_model):
    from copy import deepcopy

    torch.manual_seed(1)
    model = deepcopy(focal_model).eval()
    # Non-trivial BatchNorm statistics so that folding them is actually exercised.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    img = torch.rand(1, 3, 96, 160)
    with torch.no_grad():
        before = model(img)[0]
        model.fuse(verbose=False)
        after = model(img)[0]
    assert model.is_fused()
    # Queries come out in the order of the encoder's top-k scores, and folding BatchNorm moves those
    # scores in their last bits, so near-tied queries may trade places: pair each fused query with
    # the closest unfused one, require the pairing to be one-to-one and every pair within 1e-4.
    dist = torch.cdist(after[0], before[0])  # (300, 300)
    nearest = dist.argmin(dim=1)
    assert sorted(nearest.tolist()) == list(range(before.shape[1]))
    assert (after[0] - before[0][nearest]).abs().max() < 1e-4


# ----------------------------------------------------------------------------------------------
# Clear errors for bad input
# ----------------------------------------------------------------------------------------------
def _yaml_with(row_index: int, row: list) -> dict:
    d = yaml_model_load("rtdetr-l-FocalModulation.yaml")
    rows = d["backbone"] + d["head"]
    rows[row_index] = row
    d["backbone"], d["head"] = rows[:10], rows[10:]
    return d


def test_unknown_module_names_row_and_addmodules():
    with pytest.raises(ModelYamlError, match=r"layer 11: unknown module 'FocalModulatoin'.*ultralytics/nn/AddModules.*parse_model"):
        parse_model(_yaml_with(11, [-1, 1, "FocalModulatoin", []]), ch=3, verbose=False)


def test_wrong_argument_count_names_row_and_signature():
    with pytest.raises(ModelYamlError, match=r"layer 11: FocalModulation .*signature is FocalModulation\(dim"):
        parse_model(_yaml_with(11, [-1, 1, "FocalModulation", [3, 2, 2, True, 0.0, False, False, 99]]), ch=3, verbose=False)


@pytest.mark.parametrize("f", [12, 40, -13, [21, 30]])
def test_from_index_must_point_backwards(f):
    with pytest.raises(ModelYamlError, match=r"layer 11: 'from' index .* earlier layer"):
        parse_model(_yaml_with(11, [f, 1, "FocalModulation", []]), ch=3, verbose=False)


def test_missing_yaml_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"rtdetr-q\.yaml.*looked at.*cfg"):
        RTDETR(tmp_path / "rtdetr-q.yaml")


@pytest.mark.parametrize("shape", [(1, 3, 100, 64), (1, 3, 64, 70)])
def test_input_side_not_multiple_of_32(focal_model, shape):
    with pytest.raises(ValueError, match="multiple of the model stride 32"):
        focal_model.eval()(torch.zeros(shape))
