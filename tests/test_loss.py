"""RT-DETR training criterion: focal losses, Hungarian matcher, denoising groups and the full loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ultralytics.models.utils.loss import DETRLoss, RTDETRDetectionLoss
from ultralytics.models.utils.ops import HungarianMatcher, get_cdn_group
from ultralytics.utils.loss import FocalLoss, VarifocalLoss
from ultralytics.utils.ops import xywh2xyxy


LOSS_KEYS = {
    f"loss_{term}{aux}{dn}" for term in ("class", "bbox", "giou") for aux in ("", "_aux") for dn in ("", "_dn")
}


def make_batch(gt_groups: list[int], nc: int = 4, seed: int = 0) -> dict:
    """Training targets as RTDETRDetectionModel.loss builds them: boxes well inside the image."""
    g = torch.Generator().manual_seed(seed)
    n = sum(gt_groups)
    centres = torch.rand(n, 2, generator=g) * 0.5 + 0.25
    sizes = torch.rand(n, 2, generator=g) * 0.2 + 0.1
    return {
        "cls": torch.randint(0, nc, (n,), generator=g),
        "bboxes": torch.cat([centres, sizes], 1),
        "batch_idx": torch.cat([torch.full((k,), i, dtype=torch.long) for i, k in enumerate(gt_groups)]),
        "gt_groups": gt_groups,
    }


def perfect_preds(batch: dict, nl: int, nq: int, nc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(nl, bs, nq, 4) boxes and (nl, bs, nq, nc) logits where query j of image i predicts GT j exactly."""
    bs = len(batch["gt_groups"])
    boxes = torch.full((bs, nq, 4), 0.5)
    boxes[..., 2:] = 0.05
    scores = torch.full((bs, nq, nc), -12.0)
    first = 0
    for i, n in enumerate(batch["gt_groups"]):
        boxes[i, :n] = batch["bboxes"][first : first + n]
        scores[i, torch.arange(n), batch["cls"][first : first + n]] = 12.0
        first += n
    return boxes.expand(nl, -1, -1, -1).clone(), scores.expand(nl, -1, -1, -1).clone()


# ---------------------------------------------------------------------------------------------
# Focal and varifocal losses
# ---------------------------------------------------------------------------------------------
def test_focal_loss_reduces_mean_over_dim1_then_sum():
    pred, label = torch.randn(2, 5, 3), (torch.rand(2, 5, 3) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(pred, label, reduction="none")
    # gamma 0 and alpha 0 switch both modulations off, leaving plain BCE with upstream's reduction.
    assert torch.allclose(FocalLoss()(pred, label, gamma=0.0, alpha=0.0), bce.mean(1).sum())
    p = pred.sigmoid()
    p_t = label * p + (1 - label) * (1 - p)
    expected = (bce * (1 - p_t) ** 1.5 * (label * 0.25 + (1 - label) * 0.75)).mean(1).sum()
    assert torch.allclose(FocalLoss()(pred, label), expected)


def test_varifocal_loss_weights_positives_by_target_and_negatives_by_confidence():
    pred = torch.randn(2, 5, 3)
    label = torch.zeros(2, 5, 3)
    label[0, 1, 2] = 1
    gt_score = label * 0.6
    weight = 0.75 * pred.sigmoid() ** 2 * (1 - label) + gt_score * label
    bce = F.binary_cross_entropy_with_logits(pred, gt_score, reduction="none")
    assert torch.allclose(VarifocalLoss()(pred, gt_score, label), (bce * weight).mean(1).sum())


# ---------------------------------------------------------------------------------------------
# Hungarian matcher
# ---------------------------------------------------------------------------------------------
def test_matcher_recovers_permutation():
    nq, nc = 8, 4
    batch = make_batch([3, 4], nc=nc)
    boxes, scores = perfect_preds(batch, nl=1, nq=nq, nc=nc)
    boxes, scores = boxes[0], scores[0]
    perms = [torch.randperm(nq, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    boxes = torch.stack([b[p] for b, p in zip(boxes, perms)])  # query q now holds what query p[q] held
    scores = torch.stack([s[p] for s, p in zip(scores, perms)])

    indices = HungarianMatcher(cost_gain={"class": 2, "bbox": 5, "giou": 2})(
        boxes, scores, batch["bboxes"], batch["cls"], batch["gt_groups"]
    )
    first = 0
    for (query_idx, gt_idx), perm, n in zip(indices, perms, batch["gt_groups"]):
        assert len(query_idx) == len(gt_idx) == n
        inverse = torch.argsort(perm)  # where each original query ended up
        for q, g in zip(query_idx.tolist(), gt_idx.tolist()):
            assert first <= g < first + n  # gt indices are into the flattened batch
            assert q == inverse[g - first]
        first += n


def test_matcher_empty_images():
    nq, nc = 6, 3
    matcher = HungarianMatcher()
    batch = make_batch([2, 0], nc=nc)
    boxes, scores = torch.rand(2, nq, 4), torch.randn(2, nq, nc)
    indices = matcher(boxes, scores, batch["bboxes"], batch["cls"], batch["gt_groups"])
    assert len(indices[0][0]) == 2 and sorted(indices[0][1].tolist()) == [0, 1]
    assert indices[1][0].numel() == 0 and indices[1][1].numel() == 0
    assert indices[1][0].dtype == torch.long

    none = matcher(boxes, scores, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), [0, 0])
    assert all(q.numel() == 0 and g.numel() == 0 for q, g in none)


def test_matcher_cost_gains_change_assignment():
    # Query 0 sits exactly on the box but is unsure of its class; query 1 is sure of the class but
    # its box is off. Which one wins depends only on the weights.
    gt_box, gt_cls = torch.tensor([[0.5, 0.5, 0.2, 0.2]]), torch.tensor([1])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.6, 0.6, 0.2, 0.2]]])
    scores = torch.tensor([[[-3.0, -3.0], [-3.0, 4.0]]])
    by_class = HungarianMatcher(cost_gain={"class": 20, "bbox": 1, "giou": 1})(boxes, scores, gt_box, gt_cls, [1])
    by_box = HungarianMatcher(cost_gain={"class": 1, "bbox": 20, "giou": 20})(boxes, scores, gt_box, gt_cls, [1])
    assert by_class[0][0].tolist() == [1]
    assert by_box[0][0].tolist() == [0]


def test_matcher_rejects_class_ids_outside_model():
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\]"):
        HungarianMatcher()(torch.rand(1, 4, 4), torch.randn(1, 4, 3), torch.rand(1, 4), torch.tensor([3]), [1])
    with pytest.raises(ValueError, match="gt_groups sums to 2"):
        HungarianMatcher()(torch.rand(1, 4, 4), torch.randn(1, 4, 3), torch.rand(1, 4), torch.tensor([0]), [2])


def test_matcher_mask_costs_pick_the_overlapping_mask():
    torch.manual_seed(0)
    gt_mask = torch.zeros(1, 16, 16)
    gt_mask[0, 4:12, 4:12] = 1
    masks = torch.full((1, 2, 16, 16), -8.0)
    masks[0, 1, 4:12, 4:12] = 8.0  # query 1 predicts the ground-truth mask, query 0 predicts nothing
    matcher = HungarianMatcher(
        cost_gain={"class": 0, "bbox": 0, "giou": 0, "mask": 1, "dice": 1}, with_mask=True, num_sample_points=256
    )
    boxes, scores = torch.rand(1, 2, 4), torch.zeros(1, 2, 2)
    indices = matcher(boxes, scores, torch.rand(1, 4), torch.tensor([0]), [1], masks=masks, gt_mask=[gt_mask])
    assert indices[0][0].tolist() == [1]
    with pytest.raises(ValueError, match="needs both `masks`"):
        matcher(boxes, scores, torch.rand(1, 4), torch.tensor([0]), [1])


# ---------------------------------------------------------------------------------------------
# RT-DETR loss
# ---------------------------------------------------------------------------------------------
def test_perfect_predictions_beat_random_ones():
    nl, nq, nc = 3, 10, 4
    batch = make_batch([2, 3], nc=nc)
    criterion = RTDETRDetectionLoss(nc=nc, use_vfl=True)
    good = criterion(perfect_preds(batch, nl, nq, nc), batch)
    g = torch.Generator().manual_seed(1)
    bad = criterion((torch.rand(nl, 2, nq, 4, generator=g), torch.randn(nl, 2, nq, nc, generator=g)), batch)
    assert set(good) == LOSS_KEYS and set(bad) == LOSS_KEYS
    assert good["loss_bbox"] < 1e-4 and good["loss_giou"] < 1e-4
    assert sum(good.values()) * 10 < sum(bad.values())


def test_loss_is_finite_differentiable_and_has_all_keys():
    nl, nq, nc = 4, 12, 5
    batch = make_batch([2, 0, 3], nc=nc)
    embed = torch.randn(nc, 8)
    torch.manual_seed(0)
    _, _, _, dn_meta = get_cdn_group(batch, nc, nq, embed, num_dn=10, training=True)
    num_dn = dn_meta["dn_num_split"][0]
    pred_bboxes = torch.rand(nl, 3, nq, 4, requires_grad=True)
    pred_scores = torch.randn(nl, 3, nq, nc, requires_grad=True)
    dn_bboxes = torch.rand(nl - 1, 3, num_dn, 4, requires_grad=True)
    dn_scores = torch.randn(nl - 1, 3, num_dn, nc, requires_grad=True)

    losses = RTDETRDetectionLoss(nc=nc, use_vfl=True)(
        (pred_bboxes, pred_scores), batch, dn_bboxes=dn_bboxes, dn_scores=dn_scores, dn_meta=dn_meta
    )
    assert set(losses) == LOSS_KEYS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert all(losses[k] > 0 for k in LOSS_KEYS)
    sum(losses.values()).backward()
    for t in (pred_bboxes, pred_scores, dn_bboxes, dn_scores):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_without_dn_meta_dn_losses_are_zero_and_deterministic():
    nl, nq, nc = 3, 10, 4
    batch = make_batch([3, 1], nc=nc)
    preds = (torch.rand(nl, 2, nq, 4), torch.randn(nl, 2, nq, nc))
    criterion = RTDETRDetectionLoss(nc=nc, use_vfl=True)
    first, second = criterion(preds, batch), criterion(preds, batch)
    assert set(first) == LOSS_KEYS
    assert all(first[k] == 0 for k in LOSS_KEYS if k.endswith("_dn"))
    assert all(torch.equal(first[k], second[k]) for k in LOSS_KEYS)


def test_aux_losses_sum_the_earlier_layers():
    nq, nc = 8, 3
    batch = make_batch([2, 2], nc=nc)
    g = torch.Generator().manual_seed(3)
    boxes, scores = torch.rand(3, 2, nq, 4, generator=g), torch.randn(3, 2, nq, nc, generator=g)
    criterion = DETRLoss(nc=nc, use_vfl=True)
    full = criterion(boxes, scores, batch)
    single = DETRLoss(nc=nc, use_vfl=True, aux_loss=False)
    per_layer = [single(boxes[i : i + 1], scores[i : i + 1], batch) for i in range(3)]
    assert torch.allclose(full["loss_giou"], per_layer[2]["loss_giou"])
    assert torch.allclose(full["loss_class_aux"], per_layer[0]["loss_class"] + per_layer[1]["loss_class"])
    assert torch.allclose(full["loss_bbox_aux"], per_layer[0]["loss_bbox"] + per_layer[1]["loss_bbox"])


def test_uni_match_and_plain_bce_variants_run():
    nq, nc = 8, 3
    batch = make_batch([2, 1], nc=nc)
    g = torch.Generator().manual_seed(4)
    boxes = torch.rand(3, 2, nq, 4, generator=g).requires_grad_()
    scores = torch.randn(3, 2, nq, nc, generator=g).requires_grad_()
    for criterion in (DETRLoss(nc=nc, use_uni_match=True, uni_match_ind=1), DETRLoss(nc=nc, use_fl=False)):
        losses = criterion(boxes, scores, batch)
        assert set(losses) == {k for k in LOSS_KEYS if not k.endswith("_dn")}
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        assert scores.grad.abs().sum() > 0


def test_batch_without_any_box_gives_finite_loss():
    nq, nc = 6, 3
    batch = {"cls": torch.zeros(0, dtype=torch.long), "bboxes": torch.zeros(0, 4), "gt_groups": [0, 0]}
    scores = torch.randn(2, 2, nq, nc, requires_grad=True)
    losses = RTDETRDetectionLoss(nc=nc, use_vfl=True)((torch.rand(2, 2, nq, 4), scores), batch)
    assert losses["loss_bbox"] == 0 and losses["loss_giou"] == 0
    assert losses["loss_class"] > 0
    sum(losses.values()).backward()
    assert scores.grad.abs().sum() > 0  # every query is pushed towards "no object"


def test_dn_match_indices_pair_each_positive_with_its_box():
    indices = RTDETRDetectionLoss.get_dn_match_indices(
        [torch.tensor([0, 1, 4, 5]), torch.zeros(0, dtype=torch.long), torch.tensor([0, 4])], 2, [2, 0, 1]
    )
    assert indices[0][1].tolist() == [0, 1, 0, 1]
    assert indices[1][0].numel() == 0 and indices[1][1].numel() == 0
    assert indices[2][1].tolist() == [2, 2]
    with pytest.raises(ValueError, match="expected 2 boxes x 2 groups"):
        RTDETRDetectionLoss.get_dn_match_indices([torch.tensor([0, 1])], 2, [2])


# ---------------------------------------------------------------------------------------------
# Contrastive denoising groups
# ---------------------------------------------------------------------------------------------
def test_cdn_group_shapes():
    nc, nq, hd = 4, 20, 16
    batch = make_batch([2, 0, 3], nc=nc)
    torch.manual_seed(0)
    dn_embed, dn_bbox, attn_mask, dn_meta = get_cdn_group(batch, nc, nq, torch.randn(nc, hd), training=True)
    num_group = 100 // 3
    total = 3 * 2 * num_group  # max boxes per image x (positive + negative) x groups
    assert dn_embed.shape == (3, total, hd)
    assert dn_bbox.shape == (3, total, 4)
    assert attn_mask.shape == (total + nq, total + nq) and attn_mask.dtype == torch.bool
    assert dn_meta["dn_num_group"] == num_group
    assert dn_meta["dn_num_split"] == [total, nq]
    assert [len(p) for p in dn_meta["dn_pos_idx"]] == [2 * num_group, 0, 3 * num_group]
    assert (dn_embed[1] == 0).all() and (dn_bbox[1] == 0).all()  # the image without boxes is all padding
    assert (dn_embed[0, 2] == 0).all()  # image 0 has 2 boxes, row 2 of each copy is padding


def test_cdn_attention_mask():
    nq = 7
    batch = make_batch([2, 1], nc=3)
    _, _, mask, meta = get_cdn_group(batch, 3, nq, torch.randn(3, 4), num_dn=6, training=True)
    num_dn, num_group = meta["dn_num_split"][0], meta["dn_num_group"]
    assert (num_dn, num_group) == (12, 3)
    assert mask[num_dn:, :num_dn].all()  # matching queries never see denoising ones
    assert not mask[num_dn:, num_dn:].any()  # ...but see each other
    assert not mask[:num_dn, num_dn:].any()  # denoising queries see the matching ones
    size = num_dn // num_group
    for g in range(num_group):
        rows = slice(g * size, (g + 1) * size)
        assert not mask[rows, rows].any()
        others = torch.ones(num_dn, dtype=torch.bool)
        others[rows] = False
        assert mask[rows][:, :num_dn][:, others].all()


def test_cdn_label_noise_rate():
    nc = 50
    batch = make_batch([60, 40], nc=nc)
    # An identity embedding lets the noised label be read back from each query's embedding.
    embed = torch.eye(nc)
    torch.manual_seed(123)
    changed, count = 0, 0
    for _ in range(20):
        dn_embed, _, _, meta = get_cdn_group(batch, nc, 10, embed, num_dn=100, training=True)
        for i, first in enumerate([0, 60]):
            n = batch["gt_groups"][i]
            for c in range(2 * meta["dn_num_group"]):
                rows = dn_embed[i, c * 60 : c * 60 + n]
                changed += (rows.argmax(-1) != batch["cls"][first : first + n]).sum().item()
                count += n
    # Labels are resampled with probability 0.5 * 0.5; a resample keeps the label 1 time in nc.
    expected = 0.25 * (1 - 1 / nc)
    assert abs(changed / count - expected) < 0.02


def test_cdn_boxes_are_valid_and_positives_stay_close():
    batch = make_batch([3, 2], nc=3)
    torch.manual_seed(7)
    _, dn_bbox, _, meta = get_cdn_group(batch, 3, 10, torch.randn(3, 4), num_dn=30, training=True)
    boxes = dn_bbox.sigmoid()
    assert torch.isfinite(dn_bbox).all()
    assert ((boxes >= 0) & (boxes <= 1)).all()
    corners = xywh2xyxy(boxes)
    assert (corners >= -1e-5).all() and (corners <= 1 + 1e-5).all()
    assert (boxes[..., 2:] >= 0).all()

    # Positive copies move each corner by at most half the box size; negatives by at least that.
    first, pos_shift, neg_shift = 0, [], []
    num_pos_rows = meta["dn_num_group"] * 3
    for i, n in enumerate(batch["gt_groups"]):
        gt = batch["bboxes"][first : first + n]
        half = gt[:, 2:].repeat(1, 2) / 2
        for c in range(2 * meta["dn_num_group"]):
            shift = ((corners[i, c * 3 : c * 3 + n] - xywh2xyxy(gt)).abs() / half).max(-1).values
            (pos_shift if c * 3 < num_pos_rows else neg_shift).append(shift)
        first += n
    assert torch.cat(pos_shift).max() <= 1.0 + 1e-3
    assert torch.cat(neg_shift).max() > 1.0


def test_cdn_returns_nones_when_not_applicable():
    batch = make_batch([2, 1], nc=3)
    embed = torch.randn(3, 4)
    assert get_cdn_group(batch, 3, 10, embed, training=False) == (None, None, None, None)
    assert get_cdn_group(batch, 3, 10, embed, num_dn=0, training=True) == (None, None, None, None)
    empty = {
        "cls": torch.zeros(0, dtype=torch.long),
        "bboxes": torch.zeros(0, 4),
        "batch_idx": torch.zeros(0),
        "gt_groups": [0, 0],
    }
    assert get_cdn_group(empty, 3, 10, embed, training=True) == (None, None, None, None)


def test_cdn_is_reproducible_under_a_seed():
    batch = make_batch([2, 3], nc=4)
    embed = torch.randn(4, 8)
    torch.manual_seed(5)
    a = get_cdn_group(batch, 4, 10, embed, training=True)
    torch.manual_seed(5)
    b = get_cdn_group(batch, 4, 10, embed, training=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], get_cdn_group(batch, 4, 10, embed, training=True)[1])


# ---------------------------------------------------------------------------------------------
# Gradients point the right way
# ---------------------------------------------------------------------------------------------
def test_tiny_overfit_moves_matched_boxes_onto_targets():
    torch.manual_seed(0)
    nq, nc = 10, 3
    batch = {
        "cls": torch.tensor([0, 1, 2]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.7, 0.4, 0.3, 0.2], [0.5, 0.75, 0.25, 0.25]]),
        "gt_groups": [3],
    }
    box_logits = torch.zeros(1, nq, 4).uniform_(-1.5, 1.5).requires_grad_()
    score_logits = torch.zeros(1, nq, nc).normal_().requires_grad_()
    criterion = RTDETRDetectionLoss(nc=nc, use_vfl=True)
    optimizer = torch.optim.Adam([box_logits, score_logits], lr=0.05)
    for _ in range(100):
        preds = (box_logits.sigmoid().unsqueeze(0), score_logits.unsqueeze(0))  # one layer: (1, bs, nq, ...)
        loss = sum(criterion(preds, batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    boxes = box_logits.detach().sigmoid()
    (query_idx, gt_idx), = criterion.matcher(boxes, score_logits.detach(), batch["bboxes"], batch["cls"], [3])
    error = (boxes[0, query_idx] - batch["bboxes"][gt_idx]).abs().max()
    assert error < 0.05
    probs = score_logits.detach().sigmoid()[0, query_idx]
    assert (probs.argmax(-1) == batch["cls"][gt_idx]).all()


# ---------------------------------------------------------------------------------------------
# With the real decoder
# ---------------------------------------------------------------------------------------------
def test_with_rtdetr_decoder_training_step():
    head = pytest.importorskip("ultralytics.nn.modules.head", reason="RTDETRDecoder not available yet")
    torch.manual_seed(0)
    nc, nq = 3, 12
    decoder = head.RTDETRDecoder(nc=nc, ch=(8, 16), hd=32, nq=nq, ndp=2, nh=4, ndl=2, d_ffn=64, nd=20).train()
    batch = make_batch([2, 1], nc=nc)
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta = decoder(feats, batch=batch)
    # Split and stack as RTDETRDetectionModel.loss does.
    dn_bboxes, dec_bboxes = torch.split(dec_bboxes, dn_meta["dn_num_split"], dim=2)
    dn_scores, dec_scores = torch.split(dec_scores, dn_meta["dn_num_split"], dim=2)
    dec_bboxes = torch.cat([enc_bboxes.unsqueeze(0), dec_bboxes])
    dec_scores = torch.cat([enc_scores.unsqueeze(0), dec_scores])
    losses = RTDETRDetectionLoss(nc=nc, use_vfl=True)(
        (dec_bboxes, dec_scores), batch, dn_bboxes=dn_bboxes, dn_scores=dn_scores, dn_meta=dn_meta
    )
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert decoder.denoising_class_embed.weight.grad.abs().sum() > 0
    assert decoder.dec_bbox_head[-1].layers[-1].weight.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_survives_autocast():
    nl, nq, nc = 3, 10, 4
    batch = make_batch([2, 0, 3], nc=nc)
    g = torch.Generator().manual_seed(2)
    preds = (torch.rand(nl, 3, nq, 4, generator=g), torch.randn(nl, 3, nq, nc, generator=g))
    criterion = RTDETRDetectionLoss(nc=nc, use_vfl=True)
    on_cpu = criterion(preds, batch)
    cuda_batch = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    on_gpu = criterion(tuple(p.cuda() for p in preds), cuda_batch)
    assert all(torch.allclose(on_cpu[k], on_gpu[k].cpu(), atol=1e-4) for k in LOSS_KEYS)

    embed = torch.randn(nc, 16, device="cuda")
    dn_embed, dn_bbox, attn_mask, dn_meta = get_cdn_group(cuda_batch, nc, nq, embed, num_dn=10, training=True)
    assert dn_embed.is_cuda and dn_bbox.is_cuda and attn_mask.is_cuda
    num_dn = dn_meta["dn_num_split"][0]
    dn_bboxes = torch.rand(nl - 1, 3, num_dn, 4, device="cuda", requires_grad=True)
    dn_scores = torch.randn(nl - 1, 3, num_dn, nc, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.float16):
        half_preds = tuple(p.cuda().half().requires_grad_() for p in preds)
        dn_half = {"dn_bboxes": dn_bboxes.half(), "dn_scores": dn_scores.half()}
        losses = criterion(half_preds, cuda_batch, dn_meta=dn_meta, **dn_half)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert dn_scores.grad is not None and torch.isfinite(dn_scores.grad).all()


def test_loss_and_matcher_import_without_matplotlib():
    """The criterion and the matcher are training-time code: importing them, and so the whole package they
    live in, must not pull in matplotlib (drawing lives in ultralytics.utils.plotting and loads it lazily)."""
    import subprocess
    import sys

    code = (
        "import sys, ultralytics, ultralytics.models.utils.loss, ultralytics.models.utils.ops\n"
        "from ultralytics import RTDETR\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
