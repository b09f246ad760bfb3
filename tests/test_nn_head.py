"""Tests for RT-DETR's transformer modules (nn/modules/transformer.py, utils.py) and RTDETRDecoder (head.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ultralytics.nn.modules.head import RTDETRDecoder
from ultralytics.nn.modules.transformer import (
    AIFI,
    MLP,
    DeformableTransformerDecoder,
    DeformableTransformerDecoderLayer,
    LayerNorm2d,
    MSDeformAttn,
    TransformerEncoderLayer,
)
from ultralytics.nn.modules.utils import (
    _get_clones,
    bias_init_with_prob,
    inverse_sigmoid,
    multi_scale_deformable_attn_pytorch,
)


REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def _reference_rows(stem: str, kind: str, prefix: str) -> list[tuple[str, str]]:
    """(name, class or shape) rows of a reference tsv under `prefix`, with the prefix stripped."""
    path = REFERENCE / f"{stem}.{kind}.tsv"
    if not path.exists():
        pytest.skip(f"reference data {path} is not available")
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.split("\t")
        if name == prefix.rstrip(".") and kind == "modules":
            rows.append(("", value))
        elif name.startswith(prefix):
            rows.append((name[len(prefix) :], value))
    return rows


def _module_rows(model: nn.Module) -> list[tuple[str, str]]:
    return [(name, type(m).__name__) for name, m in model.named_modules()]


def _state_rows(model: nn.Module) -> list[tuple[str, str]]:
    return [(k, str(tuple(v.shape))) for k, v in model.state_dict().items()]


def _features(bs: int, h: int, w: int, ch: int = 256) -> list[torch.Tensor]:
    """Stride 8/16/32 feature maps of an h x w image."""
    return [torch.randn(bs, ch, h // s, w // s) for s in (8, 16, 32)]


@pytest.fixture(scope="module")
def decoder() -> RTDETRDecoder:
    torch.manual_seed(0)
    return RTDETRDecoder(3, [256, 256, 256])


# ---------------------------------------------------------------- layout against upstream's reference


def test_aifi_layout_matches_reference():
    m = AIFI(256, 1024, 8)
    assert _module_rows(m) == _reference_rows("rtdetr-l", "modules", "model.11.")
    assert _state_rows(m) == _reference_rows("rtdetr-l", "state_dict", "model.11.")


@pytest.mark.parametrize("nc, stem", [(80, "rtdetr-l"), (1, "rtdetr-l-FocalModulation")])
def test_decoder_layout_matches_reference(nc: int, stem: str):
    m = RTDETRDecoder(nc, [256, 256, 256])
    assert _module_rows(m) == _reference_rows(stem, "modules", "model.28.")
    assert _state_rows(m) == _reference_rows(stem, "state_dict", "model.28.")


def test_decoder_parameter_count_matches_article():
    m = RTDETRDecoder(1, [256, 256, 256])
    assert sum(p.numel() for p in m.parameters()) == 7303907


# ---------------------------------------------------------------- forward shapes and behaviour


@pytest.mark.parametrize("h, w", [(64, 64), (96, 160)])
def test_decoder_eval_shapes(decoder: RTDETRDecoder, h: int, w: int):
    decoder.eval()
    with torch.no_grad():
        y, (dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta) = decoder(_features(2, h, w))
    assert y.shape == (2, 300, 4 + 3)
    assert dec_bboxes.shape == (1, 2, 300, 4)
    assert dec_scores.shape == (1, 2, 300, 3)
    assert enc_bboxes.shape == (2, 300, 4)
    assert enc_scores.shape == (2, 300, 3)
    assert dn_meta is None
    assert torch.isfinite(y).all()


def test_decoder_eval_deterministic_and_in_range(decoder: RTDETRDecoder):
    decoder.eval()
    x = _features(2, 96, 160)
    with torch.no_grad():
        y1 = decoder(x)[0]
        y2 = decoder(x)[0]
    assert torch.equal(y1, y2)
    assert y1[..., :4].min() >= 0 and y1[..., :4].max() <= 1
    assert y1[..., 4:].min() >= 0 and y1[..., 4:].max() <= 1
    # y is the eval layer's boxes followed by its sigmoid scores
    _, (dec_bboxes, dec_scores, *_) = decoder(x)
    assert torch.allclose(y1, torch.cat([dec_bboxes[0], dec_scores[0].sigmoid()], -1))


def test_decoder_export_returns_y_only(decoder: RTDETRDecoder):
    decoder.eval()
    x = _features(1, 64, 64)
    with torch.no_grad():
        y = decoder(x)[0]
        decoder.export = True
        try:
            exported = decoder(x)
        finally:
            decoder.export = False
    assert isinstance(exported, torch.Tensor)
    assert torch.equal(exported, y)


@pytest.mark.parametrize("h, w", [(64, 64), (96, 160)])
def test_decoder_training_shapes_without_denoising(decoder: RTDETRDecoder, h: int, w: int):
    decoder.train()
    dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta = decoder(_features(2, h, w))
    assert dec_bboxes.shape == (6, 2, 300, 4)
    assert dec_scores.shape == (6, 2, 300, 3)
    assert enc_bboxes.shape == (2, 300, 4)
    assert enc_scores.shape == (2, 300, 3)
    assert dn_meta is None
    assert dec_bboxes.min() >= 0 and dec_bboxes.max() <= 1


def test_decoder_training_with_denoising(decoder: RTDETRDecoder):
    decoder.train()
    torch.manual_seed(1)
    batch = {
        "cls": torch.tensor([0, 2, 1]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]]),
        "batch_idx": torch.tensor([0, 0, 1]),
        "gt_groups": [2, 1],
    }
    dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta = decoder(_features(2, 64, 64), batch)
    num_dn, nq = dn_meta["dn_num_split"]
    assert nq == 300 and num_dn > 0
    assert dec_bboxes.shape == (6, 2, num_dn + 300, 4)
    assert dec_scores.shape == (6, 2, num_dn + 300, 3)
    assert enc_bboxes.shape == (2, 300, 4)
    assert len(dn_meta["dn_pos_idx"]) == 2


def test_decoder_gradients_reach_input_features(decoder: RTDETRDecoder):
    decoder.train()
    x = [f.requires_grad_() for f in _features(2, 64, 64)]
    dec_bboxes, dec_scores, enc_bboxes, enc_scores, _ = decoder(x)
    (dec_bboxes.sum() + dec_scores.sum() + enc_bboxes.sum() + enc_scores.sum()).backward()
    for f in x:
        assert f.grad is not None and f.grad.abs().sum() > 0
    assert decoder.dec_score_head[-1].weight.grad.abs().sum() > 0
    decoder.zero_grad()


def test_eval_returns_the_eval_idx_layer_of_training():
    """Eval's single layer equals layer eval_idx of a training pass (BN frozen so both see the same features)."""
    torch.manual_seed(0)
    m = RTDETRDecoder(2, [32, 64, 128], hd=64, nq=20, ndl=3, d_ffn=128, eval_idx=1)
    x = [torch.randn(1, c, s, s) for c, s in ((32, 8), (64, 4), (128, 2))]
    m.train()
    m.input_proj.eval()
    with torch.no_grad():
        train_boxes, train_scores, *_ = m(x)
        m.eval()
        _, (eval_boxes, eval_scores, *_) = m(x)
    assert torch.allclose(eval_boxes[0], train_boxes[1], atol=1e-6)
    assert torch.allclose(eval_scores[0], train_scores[1], atol=1e-6)


def test_query_selection_cycles_when_anchors_are_fewer_than_queries(decoder: RTDETRDecoder):
    decoder.eval()
    with torch.no_grad():
        _, (_, _, enc_bboxes, enc_scores, _) = decoder(_features(2, 64, 64))
    num_anchors = 8 * 8 + 4 * 4 + 2 * 2
    best = enc_scores.max(-1).values  # (bs, nq)
    first = best[:, :num_anchors]
    # the first pass visits every anchor once, best first, and later passes repeat it in the same order
    assert torch.all(first[:, :-1] >= first[:, 1:])
    assert torch.unique(enc_bboxes[0, :num_anchors], dim=0).shape[0] == num_anchors
    assert torch.equal(enc_bboxes[:, :num_anchors], enc_bboxes[:, num_anchors : 2 * num_anchors])
    assert torch.equal(best[:, 252:300], best[:, : 300 - 252])


def test_query_selection_is_topk_when_anchors_suffice():
    torch.manual_seed(0)
    m = RTDETRDecoder(2, [32, 64, 128], hd=64, nq=10, ndl=2, d_ffn=64).eval()
    x = [torch.randn(1, c, s, s) for c, s in ((32, 8), (64, 4), (128, 2))]
    with torch.no_grad():
        _, (_, _, _, enc_scores, _) = m(x)
        feats, shapes = m._get_encoder_input(x)
        all_scores = m.enc_score_head(m.enc_output(m.valid_mask * feats)).max(-1).values
    assert torch.allclose(enc_scores.max(-1).values, all_scores.topk(10, dim=1).values)


def test_anchor_cache_follows_shapes_and_dtype(decoder: RTDETRDecoder):
    decoder.eval()
    with torch.no_grad():
        decoder(_features(1, 64, 64))
        assert decoder.anchors.shape == (1, 84, 4)
        cached = decoder.anchors
        decoder(_features(1, 64, 64))
        assert decoder.anchors is cached
        decoder(_features(1, 96, 160))
        assert decoder.anchors.shape == (1, 315, 4)
        assert decoder.shapes == [[12, 20], [6, 10], [3, 5]]
    # the class-level default is never mutated
    assert RTDETRDecoder.shapes == [] and RTDETRDecoder.anchors.numel() == 0


def test_anchors_made_in_inference_mode_do_not_break_training(decoder: RTDETRDecoder):
    decoder.eval()
    with torch.inference_mode():
        decoder(_features(1, 64, 64))
    decoder.train()
    out = decoder(_features(1, 64, 64))
    out[0].sum().backward()
    decoder.zero_grad()


def test_generate_anchors_values():
    m = RTDETRDecoder(1, [8], hd=16, nq=4, nh=2, ndl=1, d_ffn=16)
    anchors, valid = m._generate_anchors([[2, 4]], grid_size=0.05)
    boxes = anchors.sigmoid()[0]
    assert anchors.shape == (1, 8, 4) and valid.shape == (1, 8, 1)
    # row-major cells: cell (y=0, x=1) is the second anchor, centred at (1.5/4, 0.5/2)
    assert torch.allclose(boxes[1], torch.tensor([0.375, 0.25, 0.05, 0.05]), atol=1e-6)
    # a cell centre closer than eps to the border is invalid and set to +inf
    anchors, valid = m._generate_anchors([[80, 80]])
    assert not valid[0, 0, 0] and torch.isinf(anchors[0, 0]).all()
    assert valid[0, 81, 0]


def test_decoder_accepts_numpy_class_count():
    np = pytest.importorskip("numpy")
    m = RTDETRDecoder(np.int64(2), [16], hd=16, nq=4, nh=2, ndl=1, d_ffn=16)
    assert m.enc_score_head.out_features == 2


def test_reset_parameters():
    m = RTDETRDecoder(4, [16, 16, 16], hd=32, nq=8, nh=4, ndl=2, d_ffn=32)
    expected = bias_init_with_prob(0.01) / 80 * 4
    assert torch.allclose(m.enc_score_head.bias, torch.full((4,), expected))
    for head in m.dec_score_head:
        assert torch.allclose(head.bias, torch.full((4,), expected))
    for mlp in [m.enc_bbox_head, *m.dec_bbox_head]:
        assert mlp.layers[-1].weight.abs().sum() == 0 and mlp.layers[-1].bias.abs().sum() == 0
    # decoder layers start as identical copies
    a, b = m.decoder.layers
    assert torch.equal(a.linear1.weight, b.linear1.weight)
    assert a.linear1.weight.data_ptr() != b.linear1.weight.data_ptr()


def test_decoder_rejects_wrong_number_of_feature_maps(decoder: RTDETRDecoder):
    decoder.eval()
    with pytest.raises(ValueError, match="expected 3 feature maps"):
        decoder(_features(1, 64, 64)[:2])


def test_constructor_errors_name_the_problem():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        MSDeformAttn(30, 4, 8, 4)
    with pytest.raises(ValueError, match="divisible by 4"):
        AIFI(6, 16, 2)
    with pytest.raises(ValueError, match="nc"):
        RTDETRDecoder(0, [16])
    with pytest.raises(ValueError, match="nc"):
        RTDETRDecoder(2.5, [16])
    with pytest.raises(ValueError, match="eval_idx"):
        DeformableTransformerDecoder(16, DeformableTransformerDecoderLayer(16, 2, 16), 2, eval_idx=5)


# ---------------------------------------------------------------- transformer pieces


def test_aifi_keeps_shape_and_uses_position():
    torch.manual_seed(0)
    m = AIFI(32, 64, 4).eval()
    x = torch.randn(2, 32, 3, 5)
    y = m(x)
    assert y.shape == x.shape
    # with position embedding, swapping two tokens does not simply swap the outputs
    x_swapped = x.clone()
    x_swapped[..., 0, 0], x_swapped[..., 2, 4] = x[..., 2, 4], x[..., 0, 0]
    y_swapped = m(x_swapped)
    assert not torch.allclose(y_swapped[..., 0, 0], y[..., 2, 4], atol=1e-4)


def test_sincos_position_embedding_values():
    pe = AIFI.build_2d_sincos_position_embedding(3, 2, 8, 10000.0)
    assert pe.shape == (1, 6, 8)
    # row index = x * h + y; quarters: sin(x*omega), cos(x*omega), sin(y*omega), cos(y*omega), omega = [1, 0.01]
    x, y = 2, 1
    row = pe[0, x * 2 + y]
    omega = torch.tensor([1.0, 0.01])
    expected = torch.cat([(x * omega).sin(), (x * omega).cos(), (y * omega).sin(), (y * omega).cos()])
    assert torch.allclose(row, expected, atol=1e-6)


def test_transformer_encoder_layer_pre_and_post_norm_differ():
    torch.manual_seed(0)
    post = TransformerEncoderLayer(16, 32, 4).eval()
    pre = TransformerEncoderLayer(16, 32, 4, normalize_before=True).eval()
    pre.load_state_dict(post.state_dict())
    x = torch.randn(2, 5, 16)
    y_post, y_pre = post(x), pre(x)
    assert y_post.shape == y_pre.shape == x.shape
    # post-norm ends with LayerNorm: zero mean per token
    assert torch.allclose(y_post.mean(-1), torch.zeros(2, 5), atol=1e-5)
    assert not torch.allclose(y_post, y_pre)


def test_mlp_layers_and_sigmoid():
    m = MLP(4, 8, 2, num_layers=3, sigmoid=True)
    assert [tuple(layer.weight.shape) for layer in m.layers] == [(8, 4), (8, 8), (2, 8)]
    y = m(torch.randn(5, 4))
    assert y.shape == (5, 2) and y.min() >= 0 and y.max() <= 1


def test_layernorm2d_normalises_channels():
    y = LayerNorm2d(6)(torch.randn(2, 6, 3, 3) * 5 + 2)
    assert torch.allclose(y.mean(1), torch.zeros(2, 3, 3), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 3, 3), atol=1e-3)


def test_utils_helpers():
    assert torch.sigmoid(torch.tensor(bias_init_with_prob(0.01))).item() == pytest.approx(0.01)
    x = torch.tensor([-3.0, 0.0, 2.5])
    assert torch.allclose(inverse_sigmoid(x.sigmoid()), x, atol=1e-4)
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0, -1.0, 2.0]))).all()
    clones = _get_clones(nn.Linear(2, 2), 3)
    assert len(clones) == 3 and clones[0].weight is not clones[1].weight
    assert torch.equal(clones[0].weight, clones[2].weight)


def test_msdeformattn_initial_offsets_form_a_star():
    m = MSDeformAttn(16, n_levels=2, n_heads=4, n_points=3)
    bias = m.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 0 looks along +x, head 1 along +y (directions scaled so the larger coordinate is 1)
    assert torch.allclose(bias[0, 1, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(bias[1, 0, 2], torch.tensor([0.0, 3.0]), atol=1e-6)
    assert m.attention_weights.weight.abs().sum() == 0


def test_msdeformattn_forward_shapes_and_errors():
    m = MSDeformAttn(16, n_levels=2, n_heads=4, n_points=2)
    shapes = [[4, 4], [2, 2]]
    query, value = torch.randn(2, 5, 16), torch.randn(2, 20, 16)
    assert m(query, torch.rand(2, 5, 2, 4), value, shapes).shape == (2, 5, 16)
    assert m(query, torch.rand(2, 5, 2, 2), value, shapes).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="must be 2 .* or 4"):
        m(query, torch.rand(2, 5, 2, 3), value, shapes)
    with pytest.raises(ValueError, match="20 keys"):
        m(query, torch.rand(2, 5, 2, 4), value, [[4, 4], [3, 3]])


def _bilinear_zero_padded(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample a (C, H, W) map at normalised (x, y) with align_corners=False semantics, zeros outside."""
    _, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(img.shape[0], dtype=img.dtype)
    for xi, yi in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
        if 0 <= xi < w and 0 <= yi < h:
            out += weight * img[:, yi, xi]
    return out


def test_multi_scale_deformable_attn_matches_slow_reference():
    torch.manual_seed(0)
    bs, heads, head_dim, nq, points = 2, 2, 3, 3, 2
    shapes = [(3, 4), (2, 2)]
    num_keys = sum(h * w for h, w in shapes)
    value = torch.randn(bs, num_keys, heads, head_dim, dtype=torch.float64)
    # include locations outside [0, 1] so zero padding is exercised
    locations = torch.rand(bs, nq, heads, len(shapes), points, 2, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(bs, nq, heads, len(shapes), points, dtype=torch.float64)

    fast = multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)

    slow = torch.zeros(bs, nq, heads, head_dim, dtype=torch.float64)
    starts = [0, shapes[0][0] * shapes[0][1]]
    for b in range(bs):
        for q in range(nq):
            for hd in range(heads):
                for level, (h, w) in enumerate(shapes):
                    img = value[b, starts[level] : starts[level] + h * w, hd].T.reshape(head_dim, h, w)
                    for p in range(points):
                        x, y = locations[b, q, hd, level, p].tolist()
                        slow[b, q, hd] += weights[b, q, hd, level, p] * _bilinear_zero_padded(img, x, y)
    assert fast.shape == (bs, nq, heads * head_dim)
    assert torch.allclose(fast, slow.reshape(bs, nq, heads * head_dim), atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_decoder_on_cuda_moves_anchor_cache():
    m = RTDETRDecoder(2, [32, 64, 128], hd=64, nq=20, ndl=2, d_ffn=64).eval()
    x = [torch.randn(1, c, s, s) for c, s in ((32, 8), (64, 4), (128, 2))]
    with torch.no_grad():
        m(x)
        m.cuda()
        y = m([f.cuda() for f in x])[0]
    assert y.is_cuda and m.anchors.is_cuda
