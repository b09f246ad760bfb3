"""predict(visualize=True): feature maps and FocalModulation maps; embed: pooled vectors; the bundled sample images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics.nn.AddModules import FocalModulation
from ultralytics.utils import ASSETS

pytestmark = pytest.mark.usefixtures("in_tmp_path")

SAMPLES = ("shapes_landscape.jpg", "shapes_portrait.jpg")
SAMPLE_SEEDS = {"shapes_landscape.jpg": (2026, 3), "shapes_portrait.jpg": (2026, 10)}
IMGSZ = 64


@pytest.fixture
def model(tiny_focal_yaml):
    from ultralytics import RTDETR

    torch.manual_seed(0)
    return RTDETR(tiny_focal_yaml)


def _focal_layer(model) -> FocalModulation:
    return next(m for m in model.model.model if isinstance(m, FocalModulation))


def _reference_maps(focal: FocalModulation, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gates (L + 1, h, w) and the modulator's channel norm (h, w) of image 0, worked out from the module's parts."""
    c = x.shape[1]
    q, ctx, gates = torch.split(focal.f_linear(x), (c, c, focal.focal_level + 1), dim=1)
    mixed = 0
    for level, layer in enumerate(focal.focal_layers):
        ctx = layer(ctx)
        mixed = mixed + ctx * gates[:, level : level + 1]
    mixed = mixed + focal.act(ctx.mean((2, 3), keepdim=True)) * gates[:, -1:]
    modulator = focal.h(mixed)
    return gates[0], modulator[0].norm(dim=0)


def test_visualize_writes_feature_and_focal_maps_without_changing_outputs(model, tmp_path):
    source = str(ASSETS / SAMPLES[0])
    plain = model.predict(source, imgsz=IMGSZ, conf=0.0)[0]
    focal = _focal_layer(model)
    state_before = {k: v.clone() for k, v in model.model.state_dict().items()}
    seen_inputs = []
    grab = focal.register_forward_pre_hook(lambda _m, args: seen_inputs.append(args[0].detach().clone()))
    try:
        shown = model.predict(source, imgsz=IMGSZ, conf=0.0, visualize=True, project=str(tmp_path), name="vis")[0]
    finally:
        grab.remove()

    # The outputs, the weights and the module's hooks are as they were.
    assert torch.equal(plain.boxes.data, shown.boxes.data)
    assert model.model.state_dict().keys() == state_before.keys()
    assert all(torch.equal(v, state_before[k]) for k, v in model.model.state_dict().items())
    assert not focal.f_linear._forward_hooks and not focal.h._forward_hooks

    folder = tmp_path / "vis" / Path(source).stem
    body = list(model.model.model)[:-1]
    for layer in body:
        name = layer.type.split(".")[-1]
        png = folder / f"stage{layer.i}_{name}_features.png"
        assert cv2.imread(str(png)) is not None, png
        assert np.load(png.with_suffix(".npy")).ndim == 3  # (C, h, w) of image 0
    assert not list(folder.glob("*RTDETRDecoder*"))

    # One overlay per map, at the input's size, and the raw maps equal what the module computes.
    i, levels = focal.i, focal.focal_level
    names = ["modulator", *(f"gate{k}" for k in range(levels)), "gate_global"]
    for name in names:
        overlay = cv2.imread(str(folder / f"stage{i}_FocalModulation_{name}.png"))
        assert overlay.shape == (IMGSZ, IMGSZ, 3)
    raw = np.load(folder / f"stage{i}_FocalModulation_focal_maps.npy")  # (L + 2, h, w)
    with torch.no_grad():
        gates, magnitude = _reference_maps(focal, seen_inputs[-1])
    assert raw.shape == (levels + 2, *gates.shape[1:])
    np.testing.assert_allclose(raw[0], magnitude.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(raw[1:], gates.numpy(), rtol=1e-4, atol=1e-5)


def test_embed_pools_the_listed_layers(model):
    sources = [str(ASSETS / name) for name in SAMPLES]
    outputs: dict[int, list[torch.Tensor]] = {2: [], 5: []}  # one (1, C, h, w) per batch of one image
    layers = model.model.model
    hooks = [layers[i].register_forward_hook(lambda m, _a, out: outputs[m.i].append(out)) for i in (2, 5)]
    try:
        vectors = model.embed(sources, imgsz=IMGSZ, embed=[5, 2])
    finally:
        for hook in hooks:
            hook.remove()
    assert len(vectors) == 2
    expected = torch.cat([torch.cat(outputs[i]).mean((2, 3)) for i in (2, 5)], 1)  # (2, 16 + 32)
    assert all(v.shape == (48,) for v in vectors)
    torch.testing.assert_close(torch.stack(vectors), expected)

    default = model.embed(sources[0], imgsz=IMGSZ)  # the last layer before the decoder: FocalModulation, 32 channels
    assert [v.shape for v in default] == [(32,)]
    # The predictor gives Results again afterwards.
    assert model.predict(sources[0], imgsz=IMGSZ)[0].boxes is not None


def test_embed_streams_and_rejects_bad_layers(model):
    streamed = list(model.embed(str(ASSETS), imgsz=IMGSZ, stream=True, embed=[4]))
    assert [v.shape for v in streamed] == [(32,), (32,)]
    assert model.predictor.args.embed is None
    with pytest.raises(ValueError, match=r"embed=\[9\].*between 0 and 5"):
        model.embed(str(ASSETS / SAMPLES[0]), imgsz=IMGSZ, embed=[9])


def test_assets_are_our_generated_shapes_scenes():
    from ultralytics.data.shapes import make_shapes_image

    assert sorted(p.name for p in ASSETS.iterdir() if p.suffix == ".jpg") == sorted(SAMPLES)
    for name, seed in SAMPLE_SEEDS.items():
        drawn, _ = make_shapes_image(seed)
        stored = cv2.imread(str(ASSETS / name))
        assert stored.shape == drawn.shape
        # Blurred, only JPEG's error is left (about 1 grey level; another scene differs by about 30).
        smooth = [cv2.GaussianBlur(im, (7, 7), 0).astype(int) for im in (stored, drawn)]
        assert np.abs(smooth[0] - smooth[1]).mean() < 3


def test_cli_predict_without_source_uses_the_assets(tiny_focal_yaml, tmp_path, captured_log):
    from ultralytics.cfg import entrypoint

    with captured_log() as messages:
        entrypoint(f"yolo predict model={tiny_focal_yaml} imgsz={IMGSZ} save=True project={tmp_path} name=p")
    assert any("source" in m and str(ASSETS) in m for m in messages)
    assert sorted(p.name for p in (tmp_path / "p").glob("*.jpg")) == sorted(SAMPLES)


def test_exported_models_refuse_visualize_and_embed(model):
    from ultralytics import RTDETR

    exported = RTDETR(model.export(format="torchscript", imgsz=IMGSZ))
    source = str(ASSETS / SAMPLES[0])
    with pytest.raises(ValueError, match=r"visualize=True needs a PyTorch model.*exported file"):
        exported.predict(source, imgsz=IMGSZ, visualize=True)
    with pytest.raises(ValueError, match=r"embed=\[2\] needs a PyTorch model"):
        exported.predict(source, imgsz=IMGSZ, embed=[2])
    with pytest.raises(TypeError, match="exported file"):
        exported.embed(source)
