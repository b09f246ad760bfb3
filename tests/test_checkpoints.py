"""Checkpoints: the upstream-compatible layout, safe loading, clear errors and weight transfer.

Compatibility with upstream Ultralytics 8.3.50 (+ the article's FocalModulation patch) is checked
without upstream installed, from data upstream produced once (see tests/fixtures/README.md):
real upstream-trained checkpoints of a tiny RT-DETR with their expected outputs, the class paths
upstream's pickles use, and the instance attributes of upstream's layer classes.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from ultralytics import RTDETR
from ultralytics.nn import tasks
from ultralytics.nn.tasks import (
    TRUST_ENV,
    CheckpointError,
    Ensemble,
    RTDETRDetectionModel,
    UnsafeCheckpointError,
    attempt_load_one_weight,
    attempt_load_weights,
    checkpoint_safe_globals,
    torch_safe_load,
)
from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_YAML = FIXTURES / "rtdetr-tiny-FocalModulation.yaml"
UPSTREAM_FILES = {"best": FIXTURES / "upstream_tiny_best.pt", "last_epoch1": FIXTURES / "upstream_tiny_last.pt"}

# Class paths that upstream 8.3.50 (with the article's patch) defines and its RT-DETR checkpoints may
# name; each was checked to import from upstream. A checkpoint written here may name no other
# ultralytics class, or upstream could not unpickle it.
UPSTREAM_CLASS_PATHS = {
    "ultralytics.nn.AddModules.FocalModulation.FocalModulation",
    "ultralytics.nn.modules.block.HGBlock",
    "ultralytics.nn.modules.block.HGStem",
    "ultralytics.nn.modules.block.RepC3",
    "ultralytics.nn.modules.block.ResNetBlock",
    "ultralytics.nn.modules.block.ResNetLayer",
    "ultralytics.nn.modules.conv.Concat",
    "ultralytics.nn.modules.conv.Conv",
    "ultralytics.nn.modules.conv.DWConv",
    "ultralytics.nn.modules.conv.LightConv",
    "ultralytics.nn.modules.conv.RepConv",
    "ultralytics.nn.modules.head.RTDETRDecoder",
    "ultralytics.nn.modules.transformer.AIFI",
    "ultralytics.nn.modules.transformer.DeformableTransformerDecoder",
    "ultralytics.nn.modules.transformer.DeformableTransformerDecoderLayer",
    "ultralytics.nn.modules.transformer.MLP",
    "ultralytics.nn.modules.transformer.MSDeformAttn",
    "ultralytics.nn.modules.transformer.TransformerEncoderLayer",
    "ultralytics.nn.tasks.BaseModel",
    "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.nn.tasks.RTDETRDetectionModel",
    "ultralytics.nn.tasks.Ensemble",
    "ultralytics.models.utils.loss.DETRLoss",
    "ultralytics.models.utils.loss.RTDETRDetectionLoss",
    "ultralytics.models.utils.ops.HungarianMatcher",
    "ultralytics.utils.loss.FocalLoss",
    "ultralytics.utils.loss.VarifocalLoss",
    "ultralytics.utils.IterableSimpleNamespace",
}
# numpy objects that training metrics (fitness, mAP) put into checkpoints, under numpy 1 and 2 names.
NUMPY_PATHS = {
    f"numpy.{core}.multiarray.{name}" for core in ("core", "_core") for name in ("scalar", "_reconstruct")
} | {"numpy.dtype", "numpy.ndarray"}

# Upstream's instance layout per class: (non-underscore instance attributes, child module names),
# the union over the instances built by `_layout_instances()` (collected from upstream once).
# Pickles restore an instance's __dict__ without running __init__, so a forward that reads an
# attribute the other side never sets breaks cross-loading.
UPSTREAM_LAYOUT = {
    "ultralytics.nn.AddModules.FocalModulation.FocalModulation": (
        ('dim', 'f', 'focal_factor', 'focal_level', 'focal_window', 'i', 'kernel_sizes', 'normalize_modulator', 'np', 'type', 'use_postln_in_modulation'),
        ('act', 'f_linear', 'focal_layers', 'h', 'ln', 'proj', 'proj_drop'),
    ),
    "ultralytics.nn.modules.block.HGBlock": (
        ('add', 'f', 'i', 'np', 'type'),
        ('ec', 'm', 'sc'),
    ),
    "ultralytics.nn.modules.block.HGStem": (
        ('f', 'i', 'np', 'type'),
        ('pool', 'stem1', 'stem2a', 'stem2b', 'stem3', 'stem4'),
    ),
    "ultralytics.nn.modules.block.RepC3": (
        ('f', 'i', 'np', 'type'),
        ('cv1', 'cv2', 'cv3', 'm'),
    ),
    "ultralytics.nn.modules.block.ResNetBlock": (
        (),
        ('cv1', 'cv2', 'cv3', 'shortcut'),
    ),
    "ultralytics.nn.modules.block.ResNetLayer": (
        ('is_first',),
        ('layer',),
    ),
    "ultralytics.nn.modules.conv.Concat": (
        ('d', 'f', 'i', 'np', 'type'),
        (),
    ),
    "ultralytics.nn.modules.conv.Conv": (
        ('f', 'i', 'np', 'type'),
        ('act', 'bn', 'conv'),
    ),
    "ultralytics.nn.modules.conv.DWConv": (
        ('f', 'i', 'np', 'type'),
        ('act', 'bn', 'conv'),
    ),
    "ultralytics.nn.modules.conv.LightConv": (
        (),
        ('conv1', 'conv2'),
    ),
    "ultralytics.nn.modules.conv.RepConv": (
        ('bn', 'c1', 'c2', 'g'),
        ('act', 'bn', 'conv1', 'conv2'),
    ),
    "ultralytics.nn.modules.head.RTDETRDecoder": (
        ('box_noise_scale', 'f', 'hidden_dim', 'i', 'label_noise_ratio', 'learnt_init_query', 'nc', 'nhead', 'nl', 'np', 'num_decoder_layers', 'num_denoising', 'num_queries', 'type'),
        ('dec_bbox_head', 'dec_score_head', 'decoder', 'denoising_class_embed', 'enc_bbox_head', 'enc_output', 'enc_score_head', 'input_proj', 'query_pos_head'),
    ),
    "ultralytics.nn.modules.transformer.AIFI": (
        ('f', 'i', 'normalize_before', 'np', 'type'),
        ('act', 'dropout', 'dropout1', 'dropout2', 'fc1', 'fc2', 'ma', 'norm1', 'norm2'),
    ),
    "ultralytics.nn.modules.transformer.DeformableTransformerDecoder": (
        ('eval_idx', 'hidden_dim', 'num_layers'),
        ('layers',),
    ),
    "ultralytics.nn.modules.transformer.DeformableTransformerDecoderLayer": (
        (),
        ('act', 'cross_attn', 'dropout1', 'dropout2', 'dropout3', 'dropout4', 'linear1', 'linear2', 'norm1', 'norm2', 'norm3', 'self_attn'),
    ),
    "ultralytics.nn.modules.transformer.MLP": (
        ('num_layers', 'sigmoid'),
        ('act', 'layers'),
    ),
    "ultralytics.nn.modules.transformer.MSDeformAttn": (
        ('d_model', 'im2col_step', 'n_heads', 'n_levels', 'n_points'),
        ('attention_weights', 'output_proj', 'sampling_offsets', 'value_proj'),
    ),
    "ultralytics.nn.modules.transformer.TransformerEncoderLayer": (
        ('normalize_before',),
        ('act', 'dropout', 'dropout1', 'dropout2', 'fc1', 'fc2', 'ma', 'norm1', 'norm2'),
    ),
    "ultralytics.nn.tasks.RTDETRDetectionModel": (
        ('end2end', 'inplace', 'names', 'save', 'stride', 'yaml'),
        ('model',),
    ),}
# Attributes our forward caches on the decoder (anchors for the last feature-map shapes). Upstream
# never reads them, and our forward rebuilds them when an unpickled upstream instance lacks them.
FORWARD_CACHES = {"ultralytics.nn.modules.head.RTDETRDecoder": {"anchors", "shapes", "valid_mask"}}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def upstream_expected() -> dict:
    return torch.load(FIXTURES / "upstream_tiny_expected.pt", weights_only=True)


@pytest.fixture
def tiny() -> RTDETRDetectionModel:
    torch.manual_seed(0)
    model = RTDETRDetectionModel(str(TINY_YAML), verbose=False)
    model.names = {0: "red", 1: "green", 2: "blue"}
    return model.eval()


@pytest.fixture(autouse=True)
def _no_trust_env(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


def _pickled_globals(path: Path) -> set[str]:
    """Every class/function a torch checkpoint's pickle names (GLOBAL and STACK_GLOBAL opcodes)."""
    import pickletools

    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    names, strings, memo = set(), [], {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        elif op.name in {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}:
            strings.append(arg)
        elif op.name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif op.name in {"BINGET", "LONG_BINGET"} and arg in memo:
            strings.append(memo[arg])
        elif op.name == "STACK_GLOBAL":
            names.add(f"{strings[-2]}.{strings[-1]}")
    return names


def _train_layout(model: nn.Module) -> dict:
    """A checkpoint as BaseTrainer.save_model writes last.pt (EMA in fp16, optimizer, numpy metrics)."""
    args = IterableSimpleNamespace(**{**DEFAULT_CFG_DICT, "model": str(TINY_YAML), "imgsz": 64, "data": "shapes.yaml"})
    model.args = args
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return {
        "epoch": 0,
        "best_fitness": np.float64(0.1),
        "model": None,
        "ema": deepcopy(model).half(),
        "updates": 3,
        "optimizer": optimizer.state_dict(),
        "train_args": vars(args),
        "train_metrics": {"metrics/mAP50(B)": np.float64(0.2), "fitness": np.array(0.1, dtype=np.float32)},
        "train_results": {"epoch": [1]},
        "date": "2024-12-01T00:00:00",
        "version": "8.3.50",
        "license": "AGPL-3.0 (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
    }


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)[0]


# ------------------------------------------------------------------------------------------------
# checkpoints written by upstream Ultralytics 8.3.50 + the article's patch
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(UPSTREAM_FILES))
def test_upstream_checkpoint_loads_and_gives_upstream_outputs(name, upstream_expected):
    """Real upstream-trained files load under the restricted unpickler, with upstream's outputs."""
    model = RTDETR(UPSTREAM_FILES[name])
    assert model.names == upstream_expected[f"{name}/names"] == {0: "red", 1: "green", 2: "blue"}
    assert model.model.nc == upstream_expected[f"{name}/nc"] == 3
    assert model.overrides["imgsz"] == model.model.args["imgsz"] == upstream_expected[f"{name}/imgsz"]
    assert model.overrides["data"].endswith("data.yaml")  # training args restored
    assert model.ckpt["epoch"] == upstream_expected[f"{name}/epoch"]
    y = _outputs(model.model, upstream_expected["input"])
    torch.testing.assert_close(y, upstream_expected[f"{name}/output"], atol=1e-5, rtol=0)


def test_upstream_checkpoint_predicts_upstream_boxes(upstream_expected):
    model = RTDETR(UPSTREAM_FILES["best"])
    result = model.predict(upstream_expected["image_bgr"].numpy(), conf=0.0, imgsz=64, verbose=False)[0]
    torch.testing.assert_close(result.boxes.xyxy, upstream_expected["best/boxes_xyxy"], atol=1e-3, rtol=0)
    torch.testing.assert_close(result.boxes.conf, upstream_expected["best/boxes_conf"], atol=1e-5, rtol=0)
    assert torch.equal(result.boxes.cls, upstream_expected["best/boxes_cls"])


def test_tiny_yaml_builds_upstream_state_dict_layout(tiny):
    ckpt, _ = torch_safe_load(UPSTREAM_FILES["best"])
    theirs = [(k, tuple(v.shape)) for k, v in ckpt["model"].state_dict().items()]
    ours = [(k, tuple(v.shape)) for k, v in tiny.state_dict().items()]
    assert ours == theirs


def test_upstream_training_checkpoint_keeps_resume_state():
    ckpt, _ = torch_safe_load(UPSTREAM_FILES["last_epoch1"])
    assert ckpt["model"] is None and ckpt["ema"] is not None  # training layout: the EMA is the model
    assert ckpt["optimizer"]["param_groups"] and ckpt["updates"] > 0
    assert ckpt["train_args"]["epochs"] == 2 and isinstance(ckpt["train_args"], dict)
    assert next(ckpt["ema"].parameters()).dtype == torch.float16


# ------------------------------------------------------------------------------------------------
# checkpoints written here must be readable by upstream
# ------------------------------------------------------------------------------------------------
def _layout_instances(tiny: RTDETRDetectionModel) -> list[nn.Module]:
    """The instance set UPSTREAM_LAYOUT was collected from (the same constructor calls upstream)."""
    from ultralytics.nn.AddModules import FocalModulation
    from ultralytics.nn.modules import RepConv, ResNetLayer, TransformerEncoderLayer

    with torch.no_grad():
        tiny(torch.rand(1, 3, 64, 64))  # a forward may leave caches behind; those get pickled too
    return [
        tiny,
        FocalModulation(16, use_postln_in_modulation=True, normalize_modulator=True),
        RepConv(8, 8, bn=True),
        ResNetLayer(8, 8, 1, is_first=True),
        ResNetLayer(8, 8, 2, e=4),
        TransformerEncoderLayer(16, 32, 2),
    ]


def test_instance_attributes_match_upstream(tiny):
    ours: dict[str, tuple[set, set]] = {}
    for root in _layout_instances(tiny):
        for m in root.modules():
            path = f"{type(m).__module__}.{type(m).__qualname__}"
            if path.startswith("ultralytics."):
                attrs, children = ours.setdefault(path, (set(), set()))
                attrs |= {k for k in vars(m) if not k.startswith("_") and k != "training"}
                children |= set(m._modules)
    assert set(ours) == set(UPSTREAM_LAYOUT)
    for path, (attrs, children) in ours.items():
        up_attrs, up_children = map(set, UPSTREAM_LAYOUT[path])
        # upstream's forward reads these; an instance pickled here must carry them
        assert up_attrs - attrs == set(), f"{path}: upstream attributes missing here"
        # anything extra here would be missing from an instance that upstream pickled
        assert attrs - up_attrs <= FORWARD_CACHES.get(path, set()), f"{path}: attributes upstream does not set"
        assert children == up_children, f"{path}: child modules differ from upstream"


def test_checkpoints_written_here_name_only_upstream_classes(tiny, tmp_path):
    from ultralytics.utils.torch_utils import strip_optimizer

    _layout_instances(tiny)  # run a forward first
    saved = tmp_path / "saved.pt"
    torch.save({"model": deepcopy(tiny).half(), "train_args": {}}, saved)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    torch.save(_train_layout(tiny), last)
    strip_optimizer(last, s=best)
    for path in (saved, last, best):
        names = _pickled_globals(path)
        assert "ultralytics.nn.tasks.RTDETRDetectionModel" in names
        ours = {n for n in names if n.startswith("ultralytics.")}
        assert ours <= UPSTREAM_CLASS_PATHS, f"{path.name}: {sorted(ours - UPSTREAM_CLASS_PATHS)}"
        others = names - ours - NUMPY_PATHS - {"collections.OrderedDict", "__builtin__.set", "builtins.set", "_codecs.encode"}
        # torch's own tensor/storage rebuild helpers, dtypes and layer classes exist upstream too
        assert all(n.startswith("torch.") for n in others), sorted(n for n in others if not n.startswith("torch."))


def test_pickled_model_carries_nc_for_upstream(tiny, tmp_path):
    """Upstream keeps nc as a plain attribute and reads it from unpickled models."""
    path = tmp_path / "m.pt"
    torch.save({"model": tiny}, path)
    ckpt, _ = torch_safe_load(path)
    assert vars(ckpt["model"])["nc"] == 3 and ckpt["model"].nc == 3


# ------------------------------------------------------------------------------------------------
# round trips here
# ------------------------------------------------------------------------------------------------
def test_model_save_round_trip_restores_names_nc_args_outputs(tmp_path):
    model = RTDETR(str(TINY_YAML))
    model.model.names = {0: "red", 1: "green", 2: "blue"}
    model.model.eval()
    x = torch.rand(1, 3, 64, 96)
    expected = _outputs(model.model, x)
    path = tmp_path / "saved.pt"
    model.save(path)
    loaded = RTDETR(path)
    assert loaded.names == {0: "red", 1: "green", 2: "blue"} and loaded.model.nc == 3
    assert loaded.model.pt_path == str(path) and loaded.task == "detect"
    assert set(loaded.model.args) <= set(DEFAULT_CFG_DICT)
    torch.testing.assert_close(_outputs(loaded.model, x), expected, atol=2e-3, rtol=0)  # saved weights may be fp16


def test_training_layout_round_trip_without_trust(tiny, tmp_path):
    from ultralytics.utils.torch_utils import strip_optimizer

    x = torch.rand(2, 3, 64, 64)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt = _train_layout(tiny)
    expected = _outputs(ckpt["ema"].float(), x)
    torch.save(ckpt, last)
    strip_optimizer(last, s=best)
    for path in (last, best):
        model, loaded = attempt_load_one_weight(path)
        assert model.args["imgsz"] == 64 and model.args["data"] == "shapes.yaml" and not model.training
        assert model.names == {0: "red", 1: "green", 2: "blue"}
        assert next(model.parameters()).dtype == torch.float32
        torch.testing.assert_close(_outputs(model, x), expected, atol=1e-5, rtol=0)
    assert isinstance(loaded["train_metrics"]["fitness"], np.ndarray)


def test_ensemble_pools_queries(tiny, tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"model": tiny}, path)
    ensemble = attempt_load_weights([path, path])
    assert isinstance(ensemble, Ensemble) and ensemble.names == tiny.names
    y, _ = ensemble(torch.rand(1, 3, 64, 64))
    assert y.shape == (1, 2 * 20, 4 + 3)


# ------------------------------------------------------------------------------------------------
# weight transfer
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rtdetr_l() -> RTDETRDetectionModel:
    torch.manual_seed(1)
    return RTDETRDetectionModel("rtdetr-l.yaml", verbose=False)


def _expected_transfer(source: dict, target: dict) -> int:
    return sum(k in target and v.shape == target[k].shape for k, v in source.items())


def test_transfer_rtdetr_l_into_focal_modulation(rtdetr_l, focal_model, tmp_path, log_text):
    path = tmp_path / "rtdetr-l.pt"
    torch.save({"model": deepcopy(rtdetr_l).half(), "train_args": {}}, path)
    source, _ = attempt_load_one_weight(path)
    target = deepcopy(focal_model)
    before = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("model.11.")}
    target.load(source)

    sd_src, sd_tgt = source.state_dict(), target.state_dict()
    skipped = [k for k in sd_tgt if not (k in sd_src and sd_src[k].shape == sd_tgt[k].shape)]
    # everything but the FocalModulation layer and the class-count-dependent head tensors (nc 80 vs 1)
    assert all(k.startswith("model.11.") or k.startswith("model.28.") for k in skipped)
    head = [k for k in skipped if k.startswith("model.28.")]
    assert sorted(head) == sorted(
        ["model.28.denoising_class_embed.weight", "model.28.enc_score_head.weight", "model.28.enc_score_head.bias"]
        + [f"model.28.dec_score_head.{i}.{p}" for i in range(6) for p in ("weight", "bias")]
    )
    n = _expected_transfer(sd_src, sd_tgt)
    assert (n, len(sd_tgt)) == (914, 937)  # counted from upstream's reference key lists as well
    assert f"Transferred {n}/{len(sd_tgt)} items from pretrained weights" in log_text()
    assert all(torch.equal(sd_tgt[k], sd_src[k]) for k in sd_tgt if k not in skipped)
    assert all(torch.equal(sd_tgt[k], v) for k, v in before.items())  # layer 11 keeps its own weights


def test_transfer_focal_modulation_into_rtdetr_l(rtdetr_l, focal_model, log_text):
    target = deepcopy(rtdetr_l)
    target.load({"model": focal_model, "ema": None})
    assert "Transferred 914/941 items from pretrained weights" in log_text()


def test_model_load_from_file_and_state_dict(tiny, tmp_path, log_text):
    """RTDETR(...).load(path) (what train's pretrained= uses) and BaseModel.load(state_dict)."""
    path = tmp_path / "tiny.pt"
    torch.save({"model": tiny}, path)
    model = RTDETR(str(TINY_YAML))
    model.load(path)
    n = len(tiny.state_dict())
    assert f"Transferred {n}/{n} items" in log_text()
    assert model.overrides["pretrained"] == str(path)
    assert all(torch.equal(a, b) for a, b in zip(model.model.state_dict().values(), tiny.state_dict().values()))
    other = RTDETRDetectionModel(str(TINY_YAML), nc=5, verbose=False)
    other.load(tiny.state_dict())
    # the class-count-dependent tensors (nc 3 vs 5) are skipped: denoising embedding, encoder and
    # the one decoder layer's score heads
    assert f"Transferred {n - 5}/{n} items" in log_text()
    with pytest.raises(TypeError, match="checkpoint dict.*state_dict"):
        other.load([1, 2])


# ------------------------------------------------------------------------------------------------
# files that are not detection checkpoints
# ------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt' not found"):
        RTDETR(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty file"),
        ("text", "could not be read as a torch checkpoint"),
        ("truncated", "could not be read as a torch checkpoint.*truncated"),
        ("state_dict", "plain state_dict"),
        ("other_dict", "not an Ultralytics detection checkpoint.*keys are \\['epoch', 'weights'\\]"),
        ("list", "holds a builtins.list, not a detection checkpoint"),
        ("plain_module", "found a torch.nn.modules.linear.Linear there"),
    ],
)
def test_non_checkpoints_get_clear_errors(kind, message, tiny, tmp_path):
    path = tmp_path / f"{kind}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is a text file renamed to .pt\n")
    elif kind == "truncated":
        buffer = io.BytesIO()
        torch.save({"model": tiny}, buffer)
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "state_dict":
        torch.save(tiny.state_dict(), path)
    elif kind == "other_dict":
        torch.save({"epoch": 3, "weights": "x"}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"model": nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError, match=message):
        RTDETR(path)
    with pytest.raises(TypeError):  # CheckpointError is a TypeError, as upstream raises for foreign files
        attempt_load_one_weight(path)


def test_bare_pickled_model_is_accepted_with_warning(tiny, tmp_path, log_text):
    path = tmp_path / "bare.pt"
    torch.save(tiny, path)
    model, ckpt = attempt_load_one_weight(path)
    assert set(ckpt) == {"model"} and model.names == tiny.names
    assert "bare RTDETRDetectionModel" in log_text()


def test_classes_this_package_lacks_are_named(tiny, tmp_path, monkeypatch):
    """e.g. a YOLO checkpoint: its head class does not exist here, and trusting the file cannot help."""
    import ultralytics.nn.modules.head as head

    class Detect(nn.Module):
        pass

    Detect.__module__, Detect.__qualname__ = head.__name__, "Detect"
    monkeypatch.setattr(head, "Detect", Detect, raising=False)
    path = tmp_path / "yolo.pt"
    torch.save({"model": Detect()}, path)
    monkeypatch.delattr(head, "Detect")
    for trusted in (False, True):
        with pytest.raises(CheckpointError, match=r"classes this package does not have: ultralytics\.nn\.modules\.head\.Detect"):
            torch_safe_load(path, trusted=trusted)


# ------------------------------------------------------------------------------------------------
# safe loading policy
# ------------------------------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this calls os.mkdir: stands in for a malicious payload."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the raw pickle.dumps file
def test_code_in_a_pickle_is_refused_and_never_run(tmp_path, monkeypatch, log_text):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match=rf"mkdir.*{TRUST_ENV}=1"):
        RTDETR(path)
    assert not marker.exists()
    # a plain pickle.dump (not torch.save) is refused the same way or as unreadable, never executed
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(CheckpointError):
        torch_safe_load(raw)
    assert not marker.exists()
    # trusting the file runs it (that is what trust means); the result is still checked
    monkeypatch.setenv(TRUST_ENV, "1")
    with pytest.raises(CheckpointError, match="not an Ultralytics detection checkpoint"):
        torch_safe_load(path)
    assert marker.exists()
    assert "unpickling it fully because it is trusted" in log_text()


def test_unlisted_object_needs_trust(tiny, tmp_path, monkeypatch, log_text):
    import datetime

    path = tmp_path / "extra.pt"
    torch.save({"model": tiny, "when": datetime.date(2024, 1, 2)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"datetime\.date"):
        torch_safe_load(path)
    ckpt, _ = torch_safe_load(path, trusted=True)
    assert ckpt["when"] == datetime.date(2024, 1, 2)
    assert "WARNING" in log_text() and "datetime.date" in log_text()
    monkeypatch.setenv(TRUST_ENV, "true")
    model, _ = attempt_load_one_weight(path)
    assert model.names == tiny.names
    with pytest.raises(UnsafeCheckpointError):
        torch_safe_load(path, trusted=False)  # an explicit False wins over the environment


def test_allow_list_covers_package_and_addmodules_classes():
    names = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}" for g in checkpoint_safe_globals()}
    assert UPSTREAM_CLASS_PATHS <= names
    assert "torch.nn.modules.conv.Conv2d" in names and "numpy.core.multiarray.scalar" in names
    assert not any(n.startswith(("os.", "posix.", "builtins.", "subprocess.")) for n in names)
    assert tasks.TRUST_ENV == "ULTRALYTICS_TRUST_CHECKPOINTS"
