"""Convolution and backbone blocks: sizes, upstream module layout, forward shapes, folding, yaml args."""

from __future__ import annotations

import dataclasses

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ultralytics.nn.modules.block import HGBlock, HGStem, RepC3, ResNetBlock, ResNetLayer, resnet_layer_out_channels
from ultralytics.nn.modules.conv import Concat, Conv, DWConv, LightConv, RepConv, autopad
from ultralytics.nn.modules.yaml_args import YamlArgs


REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"

# (constructor, args, parameters) from the layer table printed in the article (section 六).
ARTICLE_LAYERS = [
    (HGStem, [3, 32, 48], 25248),
    (HGBlock, [48, 48, 128, 3, 6], 155072),
    (DWConv, [128, 128, 3, 2, 1, False], 1408),
    (HGBlock, [128, 96, 512, 3, 6], 839296),
    (DWConv, [512, 512, 3, 2, 1, False], 5632),
    (HGBlock, [512, 192, 1024, 5, 6, True, False], 1695360),
    (HGBlock, [1024, 192, 1024, 5, 6, True, True], 2055808),
    (DWConv, [1024, 1024, 3, 2, 1, False], 11264),
    (HGBlock, [1024, 384, 2048, 5, 6, True, False], 6708480),
    (Conv, [2048, 256, 1, 1, None, 1, 1, False], 524800),
    (Conv, [256, 256, 1, 1], 66048),
    (RepC3, [512, 256, 3], 2232320),
    (Conv, [256, 256, 3, 2], 590336),
]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomize_bn(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine terms so that folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


def fold_conv_bn(m: Conv) -> None:
    """Fold m.bn into m.conv the way BaseModel.fuse does, independently of torch_utils."""
    conv, bn = m.conv, m.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    m.conv = fused
    del m.bn
    m.forward = m.forward_fuse


def rtdetr_l_layers() -> nn.Module:
    """Layers 0-27 of rtdetr-l as parse_model builds them; AIFI (11) is a placeholder owned by another file."""
    layers = [
        HGStem(3, 32, 48),
        HGBlock(48, 48, 128, 3, 6),
        DWConv(128, 128, 3, 2, 1, False),
        HGBlock(128, 96, 512, 3, 6),
        DWConv(512, 512, 3, 2, 1, False),
        HGBlock(512, 192, 1024, 5, 6, True, False),
        HGBlock(1024, 192, 1024, 5, 6, True, True),
        HGBlock(1024, 192, 1024, 5, 6, True, True),
        DWConv(1024, 1024, 3, 2, 1, False),
        HGBlock(1024, 384, 2048, 5, 6, True, False),
        Conv(2048, 256, 1, 1, None, 1, 1, False),
        nn.Identity(),
        Conv(256, 256, 1, 1),
        nn.Upsample(None, 2, "nearest"),
        Conv(1024, 256, 1, 1, None, 1, 1, False),
        Concat(1),
        RepC3(512, 256, 3),
        Conv(256, 256, 1, 1),
        nn.Upsample(None, 2, "nearest"),
        Conv(512, 256, 1, 1, None, 1, 1, False),
        Concat(1),
        RepC3(512, 256, 3),
        Conv(256, 256, 3, 2),
        Concat(1),
        RepC3(512, 256, 3),
        Conv(256, 256, 3, 2),
        Concat(1),
        RepC3(512, 256, 3),
    ]
    root = nn.Module()
    root.model = nn.Sequential(*layers)
    return root


def read_tsv(name: str) -> list[list[str]]:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference data {path} is not present")
    lines = path.read_text().splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.strip("()").split(",") if x.strip())


def ours_only(name: str) -> bool:
    """Rows of layers built from this file's classes (not AIFI at 11 nor the decoder at 28)."""
    parts = name.split(".")
    return len(parts) > 1 and parts[0] == "model" and parts[1] not in {"11", "28"}


@pytest.fixture(scope="module")
def rtdetr_l() -> nn.Module:
    return rtdetr_l_layers()


# ---------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("cls, args, expected", ARTICLE_LAYERS, ids=[f"{c.__name__}{a}" for c, a, _ in ARTICLE_LAYERS])
def test_parameter_counts_match_article(cls: type, args: list, expected: int) -> None:
    assert n_params(cls(*args)) == expected


def test_autopad() -> None:
    assert autopad(3) == 1
    assert autopad(5) == 2
    assert autopad(1) == 0
    assert autopad(3, 0) == 0
    assert autopad([3, 5]) == [1, 2]
    assert autopad(3, None, 2) == 2  # dilated 3x3 spans 5 pixels


# ------------------------------------------------------------------------------- upstream module layout


@pytest.mark.parametrize("prefix", ["model.0.", "model.5.", "model.16.", "model."])
def test_module_tree_matches_reference(rtdetr_l: nn.Module, prefix: str) -> None:
    ref = [(r[0], r[1]) for r in read_tsv("rtdetr-l.modules.tsv") if ours_only(r[0]) and (r[0] + ".").startswith(prefix)]
    ours = [
        (name, type(m).__name__)
        for name, m in rtdetr_l.named_modules()
        if ours_only(name) and (name + ".").startswith(prefix)
    ]
    assert ref, f"no reference rows under {prefix}"
    assert ours == ref


@pytest.mark.parametrize("prefix", ["model.0.", "model.5.", "model.16.", "model."])
def test_state_dict_matches_reference(rtdetr_l: nn.Module, prefix: str) -> None:
    ref = [(r[0], parse_shape(r[1])) for r in read_tsv("rtdetr-l.state_dict.tsv") if ours_only(r[0])]
    ref = [r for r in ref if r[0].startswith(prefix)]
    ours = [(k, tuple(v.shape)) for k, v in rtdetr_l.state_dict().items() if ours_only(k) and k.startswith(prefix)]
    assert ref, f"no reference rows under {prefix}"
    assert ours == ref


def test_standalone_blocks_state_dict_keys() -> None:
    """Layout of single blocks, independent of the reference files."""
    stem = HGStem(3, 32, 48).state_dict()
    assert stem["stem2a.conv.weight"].shape == (16, 32, 2, 2)
    assert stem["stem3.conv.weight"].shape == (32, 64, 3, 3)
    rep = RepC3(512, 256, 3)
    assert isinstance(rep.cv3, nn.Identity)
    assert rep.state_dict()["m.2.conv2.conv.weight"].shape == (256, 256, 1, 1)
    assert isinstance(RepC3(64, 32, 1, 0.5).cv3, Conv)
    light = HGBlock(512, 192, 1024, 5, 6, True, False)
    assert light.state_dict()["m.0.conv2.conv.weight"].shape == (192, 1, 5, 5)
    assert light.state_dict()["sc.conv.weight"].shape == (512, 512 + 6 * 192, 1, 1)


# ------------------------------------------------------------------------------------- activations


def test_conv_activation_arguments() -> None:
    relu = nn.ReLU()
    assert Conv(4, 4).act is Conv.default_act
    assert Conv(4, 4).act is Conv(8, 8).act  # the default is one shared instance, as upstream
    assert isinstance(Conv(4, 4, act=False).act, nn.Identity)
    assert Conv(4, 4, act=relu).act is relu
    from_class = Conv(4, 4, act=nn.Hardswish)
    assert isinstance(from_class.act, nn.Hardswish) and from_class.act is not Conv(4, 4, act=nn.Hardswish).act
    assert isinstance(RepConv(4, 4).act, nn.SiLU) and RepConv(4, 4).act is not Conv.default_act
    with pytest.raises(TypeError, match="act='relu'"):
        Conv(4, 4, act="relu")


def test_hgblock_activation_sharing() -> None:
    a, b = HGBlock(8, 4, 16, 3, 2), HGBlock(16, 4, 16, 3, 2)
    assert a.m[0].act is b.ec.act is HGBlock.default_act
    pair = nn.Sequential(a, b)
    assert sum(isinstance(m, nn.ReLU) for m in pair.modules()) == 1  # modules() yields a shared module once
    gelu = HGBlock(8, 4, 16, 3, 2, True, False, nn.GELU)
    acts = {id(gelu.m[0].conv2.act), id(gelu.m[1].conv2.act), id(gelu.sc.act), id(gelu.ec.act)}
    assert len(acts) == 1 and isinstance(gelu.sc.act, nn.GELU)
    assert isinstance(gelu.m[0].conv1.act, nn.Identity)
    assert HGBlock(8, 4, 16, 3, 2, act=nn.GELU).sc.act is not gelu.sc.act
    assert isinstance(HGStem(3, 8, 16).stem1.act, nn.ReLU)
    assert HGStem(3, 8, 16).stem1.act is not HGStem(3, 8, 16).stem2a.act


# --------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("hw", [(64, 64), (96, 160)])
def test_forward_shapes_and_strides(hw: tuple[int, int]) -> None:
    h, w = hw
    x = torch.randn(2, 3, h, w)
    y = HGStem(3, 8, 16)(x)
    assert y.shape == (2, 16, h // 4, w // 4)
    y = HGBlock(16, 8, 32, 3, 3)(y)
    assert y.shape == (2, 32, h // 4, w // 4)
    y = DWConv(32, 32, 3, 2, 1, False)(y)
    assert y.shape == (2, 32, h // 8, w // 8)
    y = HGBlock(32, 8, 32, 5, 2, True, True)(y)
    assert y.shape == (2, 32, h // 8, w // 8)
    assert Conv(32, 24, 3, 2)(y).shape == (2, 24, h // 16, w // 16)
    assert LightConv(32, 12, 5)(y).shape == (2, 12, h // 8, w // 8)
    assert RepConv(32, 16, s=2)(y).shape == (2, 16, h // 16, w // 16)
    assert RepC3(32, 24, 2)(y).shape == (2, 24, h // 8, w // 8)
    assert RepC3(32, 24, 1, 0.5)(y).shape == (2, 24, h // 8, w // 8)
    assert Concat(1)([y, y[:, :5]]).shape == (2, 37, h // 8, w // 8)


def test_hgblock_shortcut_adds_input() -> None:
    torch.manual_seed(0)
    block = HGBlock(8, 4, 8, 3, 2, False, True).eval()
    plain = HGBlock(8, 4, 8, 3, 2, False, False).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(1, 8, 16, 16)
    assert block.add and not plain.add
    torch.testing.assert_close(block(x), plain(x) + x)
    assert not HGBlock(8, 4, 16, 3, 2, False, True).add  # no residual when the widths differ


@pytest.mark.parametrize("s", [1, 2])
def test_resnet_layer_shapes(s: int) -> None:
    x = torch.randn(1, 3, 64, 96)
    stem = ResNetLayer(3, 16, 1, True, 1)
    y = stem(x)
    assert y.shape == (1, 16, 16, 24) and resnet_layer_out_channels([3, 16, 1, True, 1]) == 16
    stage = ResNetLayer(16, 8, s, False, 3)
    z = stage(y)
    assert z.shape == (1, 32, 16 // s, 24 // s) and resnet_layer_out_channels([16, 8, s, False, 3]) == 32
    assert len(stage.layer) == 3 and all(isinstance(b, ResNetBlock) for b in stage.layer)
    assert isinstance(stage.layer[0].shortcut, nn.Sequential)  # 16 -> 32 channels needs a projection
    assert isinstance(stage.layer[1].shortcut, nn.Identity)
    assert (z >= 0).all()  # every block ends in a ReLU
    wide = ResNetLayer(16, 8, 1, False, 1, 2)
    assert wide(y).shape[1] == 16 == resnet_layer_out_channels([16, 8, 1, False, 1, 2])


def test_blocks_backpropagate() -> None:
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    model = nn.Sequential(HGStem(3, 8, 16), HGBlock(16, 8, 16, 3, 2, True, True), RepC3(16, 16, 2))
    model(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------------------- folding


@pytest.mark.parametrize("c1, c2, s, g, bn", [(8, 8, 1, 1, True), (8, 16, 2, 1, False), (8, 8, 1, 2, True)])
def test_repconv_fuse_keeps_outputs(c1: int, c2: int, s: int, g: int, bn: bool) -> None:
    torch.manual_seed(1)
    m = RepConv(c1, c2, s=s, g=g, bn=bn)
    assert (m.bn is not None) == (bn and c1 == c2 and s == 1)
    randomize_bn(m)
    m.eval()
    x = torch.randn(2, c1, 20, 28)
    before = m(x)
    m.fuse_convs()
    assert not hasattr(m, "conv1") and not hasattr(m, "conv2") and not hasattr(m, "bn")
    assert m.conv.bias is not None and m.conv.groups == g
    assert [n for n, _ in m.named_children()] == ["act", "conv"]
    after = m(x)
    assert (before - after).abs().max() < 1e-4
    m.fuse_convs()  # a second call changes nothing
    torch.testing.assert_close(m(x), after)
    clone = copy.deepcopy(m)  # EMA copies fused models
    torch.testing.assert_close(clone(x), after)


def test_repc3_fused_matches() -> None:
    torch.manual_seed(2)
    block = RepC3(16, 16, 2)
    randomize_bn(block, seed=3)
    block.eval()
    x = torch.randn(1, 16, 12, 12)
    before = block(x)
    for m in block.modules():
        if isinstance(m, RepConv):
            m.fuse_convs()
        elif isinstance(m, Conv) and hasattr(m, "bn"):
            fold_conv_bn(m)
    assert (before - block(x)).abs().max() < 1e-4


def test_repconv_deploy_loads_fused_weights() -> None:
    torch.manual_seed(3)
    trained = RepConv(8, 8, bn=True)
    randomize_bn(trained)
    trained.eval()
    trained.fuse_convs()
    deployed = RepConv(8, 8, deploy=True).eval()
    deployed.load_state_dict(trained.state_dict())
    x = torch.randn(1, 8, 10, 10)
    torch.testing.assert_close(deployed(x), trained(x))


@pytest.mark.parametrize("make", [lambda: Conv(6, 12, 3, 2), lambda: DWConv(12, 12, 5, 1), lambda: Conv(8, 8, 3, 1, None, 2)])
def test_conv_bn_fold_keeps_outputs(make) -> None:
    torch.manual_seed(4)
    m = make()
    randomize_bn(m)
    m.eval()
    x = torch.randn(2, m.conv.in_channels, 17, 23)
    before = m(x)
    fold_conv_bn(m)
    assert (before - m(x)).abs().max() < 1e-4
    assert torch.equal(m.forward_fuse(x), m(x))


# ------------------------------------------------------------------------------------ bad arguments


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="only k=3, p=1"):
        RepConv(8, 8, k=5)
    with pytest.raises(ValueError, match="g=4 must divide"):
        Conv(6, 8, 3, 1, None, 4)
    with pytest.raises(ValueError, match="c2=0"):
        Conv(6, 0)


# ------------------------------------------------------------------------------------- yaml args


def _rule(cls: type) -> YamlArgs:
    """A class's yaml rule without its example row, which only the error messages use."""
    return dataclasses.replace(cls.yaml_args, example="")


def test_yaml_declarations() -> None:
    assert _rule(Conv) == _rule(DWConv) == _rule(LightConv) == _rule(RepConv) == YamlArgs("out")
    assert _rule(RepC3) == YamlArgs("out", repeats_at=2)
    assert _rule(HGStem) == YamlArgs("mid_out")
    assert _rule(HGBlock) == YamlArgs("mid_out", repeats_at=4)
    assert _rule(Concat) == YamlArgs("sum")
    assert ResNetLayer.yaml_args.channels == "given"
    for cls in (Conv, DWConv, LightConv, RepConv, RepC3, HGStem, HGBlock, Concat, ResNetLayer):
        assert "{name}" in cls.yaml_args.example, f"{cls.__name__} has no example row for its error messages"


# (class, yaml args, from, repeats, channels so far, expected constructor args, expected width, params or None)
YAML_ROWS = [
    (HGStem, [32, 48], -1, 1, [3], [3, 32, 48], 48, 25248),
    (HGBlock, [48, 128, 3], -1, 6, [3, 48], [48, 48, 128, 3, 6], 128, 155072),
    (DWConv, [128, 3, 2, 1, False], -1, 1, [128], [128, 128, 3, 2, 1, False], 128, 1408),
    (HGBlock, [192, 1024, 5, True, True], -1, 6, [1024], [1024, 192, 1024, 5, 6, True, True], 1024, 2055808),
    (Conv, [256, 1, 1, None, 1, 1, False], -1, 1, [2048], [2048, 256, 1, 1, None, 1, 1, False], 256, 524800),
    (Conv, [256, 3, 2], -1, 1, [256], [256, 256, 3, 2], 256, 590336),
    (RepC3, [256], -1, 3, [512], [512, 256, 3], 256, 2232320),
    (Concat, [1], [-2, -1], 1, [1024, 256, 256], [1], 512, 0),
    (ResNetLayer, [3, 64, 1, True, 1], -1, 1, [3], [3, 64, 1, True, 1], 64, None),
    (ResNetLayer, [256, 128, 2, False, 4], -1, 1, [256], [256, 128, 2, False, 4], 512, None),
]


@pytest.mark.parametrize("cls, args, f, n, ch, want_args, want_c2, params", YAML_ROWS)
def test_yaml_args_resolve_to_article_arguments(cls, args, f, n, ch, want_args, want_c2, params) -> None:
    resolved, c2, n_left = cls.yaml_args.resolve(list(args), f, n, ch, 1.0, 1024, 1)
    assert (resolved, c2, n_left) == (want_args, want_c2, 1)
    if params is not None:
        assert n_params(cls(*resolved)) == params
    if cls is ResNetLayer:
        x = torch.randn(1, resolved[0], 32, 32)
        assert cls(*resolved)(x).shape[1] == c2
