"""The private helpers the network and loss files are built from."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ultralytics.models.utils.loss import (
    DEFAULT_LOSS_GAIN,
    TERMS,
    DETRLoss,
    _flatten_matches,
)
from ultralytics.nn.modules.conv import Conv, RepConv, _fold_bn, autopad
from ultralytics.nn.modules.head import RTDETRDecoder, _split_denoising
from ultralytics.nn.modules.transformer import (
    AIFI,
    MLP,
    DeformableTransformerDecoder,
    DeformableTransformerDecoderLayer,
    TransformerEncoderLayer,
)


def test_autopad_dilated_and_per_axis_kernels():
    assert autopad(3) == 1
    assert autopad(3, d=2) == 2  # a dilated 3x3 covers 5 pixels
    assert autopad([1, 5]) == [0, 2]
    assert autopad([3, 3], d=3) == [3, 3]
    assert autopad(7, p=0) == 0  # explicit padding wins


def test_fold_bn_matches_conv_then_bn_in_eval():
    conv = Conv(4, 6, k=3, act=False).eval()
    conv.bn.running_mean.uniform_(-1, 1)
    conv.bn.running_var.uniform_(0.5, 2)
    kernel, bias = _fold_bn(conv.conv.weight, conv.bn)
    x = torch.randn(2, 4, 7, 7)
    folded = nn.functional.conv2d(x, kernel, bias, padding=1)
    torch.testing.assert_close(folded, conv(x), rtol=1e-4, atol=1e-5)


def test_repconv_equivalent_kernel_includes_identity_branch():
    m = RepConv(4, 4, bn=True).eval()
    kernel, bias = m.get_equivalent_kernel_bias()
    assert kernel.shape == (4, 4, 3, 3) and bias.shape == (4,)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(m.act(nn.functional.conv2d(x, kernel, bias, padding=1)), m(x), rtol=1e-4, atol=1e-5)


def test_aifi_width_hook_checks_both_conditions():
    with pytest.raises(ValueError, match="divisible by 4"):
        AIFI(6, 16, 2)
    with pytest.raises(ValueError, match="divisible by num_heads=3"):
        AIFI(8, 16, 3)
    TransformerEncoderLayer(6, 16, 2)  # the plain layer has no multiple-of-4 condition


def test_mlp_applies_activation_between_layers_only():
    m = MLP(3, 5, 2, num_layers=3, act=nn.ReLU)
    x = torch.randn(4, 3)
    expected = m.layers[2](torch.relu(m.layers[1](torch.relu(m.layers[0](x)))))
    torch.testing.assert_close(m(x), expected)
    single = MLP(3, 5, 2, num_layers=1, sigmoid=True)
    torch.testing.assert_close(single(x), single.layers[0](x).sigmoid())


def test_decoder_eval_stops_at_eval_idx():
    torch.manual_seed(0)
    hd, nq, nc = 16, 5, 3
    layer = DeformableTransformerDecoderLayer(hd, 2, 32, n_levels=1, n_points=2)
    decoder = DeformableTransformerDecoder(hd, layer, 3, eval_idx=-2).eval()
    assert decoder.eval_idx == 1
    calls = []
    for i, lyr in enumerate(decoder.layers):
        lyr.register_forward_hook(lambda *_, i=i: calls.append(i))
    boxes = nn.ModuleList(MLP(hd, hd, 4, 3) for _ in range(3))
    scores = nn.ModuleList(nn.Linear(hd, nc) for _ in range(3))
    feats, shapes = torch.randn(2, 16, hd), [[4, 4]]
    out_boxes, out_logits = decoder(
        torch.randn(2, nq, hd), torch.randn(2, nq, 4), feats, shapes, boxes, scores, MLP(4, hd, hd, 2)
    )
    assert calls == [0, 1]  # the last layer is never run in eval
    assert out_boxes.shape == (1, 2, nq, 4) and out_logits.shape == (1, 2, nq, nc)
    decoder.train()
    out_boxes, _ = decoder(
        torch.randn(2, nq, hd), torch.randn(2, nq, 4), feats, shapes, boxes, scores, MLP(4, hd, hd, 2)
    )
    assert out_boxes.shape == (3, 2, nq, 4)


def test_top_proposals_cycle_when_anchors_are_few():
    head = RTDETRDecoder(nc=2, ch=[8], hd=16, nq=5, nh=2, ndl=1, d_ffn=16)
    logits = torch.tensor([[[0.1, 0.0], [0.9, 0.2], [0.5, 0.7]]])  # best class per anchor: 0.1, 0.9, 0.7
    assert head._top_proposals(logits).tolist() == [[1, 2, 0, 1, 2]]


def test_split_denoising_takes_the_front_queries():
    t = torch.arange(2 * 1 * 7).view(2, 1, 7, 1)
    dn, match = _split_denoising(t, [3, 4])
    assert dn.shape == (2, 1, 3, 1) and match.shape == (2, 1, 4, 1)
    assert torch.equal(torch.cat([dn, match], 2), t)


def test_flatten_matches_orders_pairs_by_image():
    indices = [
        (torch.tensor([2, 0]), torch.tensor([1, 0])),
        (torch.zeros(0, dtype=torch.long),) * 2,
        (torch.tensor([4]), torch.tensor([2])),
    ]
    image, query, gt = _flatten_matches(indices)
    assert image.tolist() == [0, 0, 2] and query.tolist() == [2, 0, 4] and gt.tolist() == [1, 0, 2]


def test_default_gains_are_copied_per_criterion():
    a, b = DETRLoss(nc=2), DETRLoss(nc=2)
    a.loss_gain["class"] = 9
    assert b.loss_gain == DEFAULT_LOSS_GAIN and DEFAULT_LOSS_GAIN["class"] == 1
    assert a.matcher.cost_gain == {"class": 2, "bbox": 5, "giou": 2}
    assert TERMS == ("loss_class", "loss_bbox", "loss_giou")
