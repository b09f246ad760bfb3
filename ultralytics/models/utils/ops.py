"""Training-time helpers of the RT-DETR decoder: bipartite matching and contrastive denoising groups.

Boxes throughout are normalised (cx, cy, w, h). Ground truth for a batch is flattened: ``N`` boxes
in image order, with ``gt_groups[i]`` of them belonging to image ``i``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ultralytics.utils.ops import bbox_iou
from ultralytics.utils.ops import xywh2xyxy, xyxy2xywh

MatchIndices = list[tuple[torch.Tensor, torch.Tensor]]


class NonFinitePredictions(FloatingPointError):
    """Predictions with NaN or inf values reached the matcher; the training step they belong to is dropped.

    `boxes` and `logits` count the non-finite values of each, out of `box_values` and `logit_values`.
    """

    def __init__(self, boxes: int, box_values: int, logits: int, logit_values: int) -> None:
        self.boxes, self.box_values, self.logits, self.logit_values = boxes, box_values, logits, logit_values
        super().__init__(
            f"non-finite predictions: {boxes} of {box_values} box values and {logits} of {logit_values} "
            "class logits are NaN or inf"
        )


def check_finite_predictions(pred_bboxes: torch.Tensor, pred_scores: torch.Tensor) -> None:
    """Raise NonFinitePredictions when (bs, nq, 4) boxes or (bs, nq, nc) logits hold NaN or inf.

    scipy's assignment rejects such costs ("cost matrix contains invalid numeric entries"), and a cost
    made finite by force would match at random: the step is better dropped.
    """
    if bool(torch.isfinite(pred_bboxes).all() & torch.isfinite(pred_scores).all()):  # one device sync
        return
    bad_boxes = int((~torch.isfinite(pred_bboxes)).sum())
    bad_logits = int((~torch.isfinite(pred_scores)).sum())
    raise NonFinitePredictions(bad_boxes, pred_bboxes.numel(), bad_logits, pred_scores.numel())


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to ground-truth boxes by minimum total cost.

    The cost of pairing query ``q`` with box ``g`` is
    ``class * focal_cost + bbox * L1(cxcywh) + giou * (1 - GIoU)`` (plus mask and dice terms when
    ``with_mask``), and scipy's ``linear_sum_assignment`` solves each image separately. Nothing here
    is differentiated: predictions are detached.

    Args:
        cost_gain: weights of the cost terms, keys ``class``, ``bbox``, ``giou`` (and ``mask``,
            ``dice`` for masks). None gives ``{class: 1, bbox: 5, giou: 2, mask: 1, dice: 1}``.
        use_fl: score queries with the focal-loss cost on sigmoid scores; False uses ``-softmax``.
        with_mask: add the point-sampled mask BCE and dice costs (needs ``masks`` and ``gt_mask``).
        num_sample_points: points sampled per image for the mask costs.
        alpha: focal cost balance between the positive and negative terms.
        gamma: focal cost focusing exponent.
    """

    def __init__(
        self,
        cost_gain: dict[str, float] | None = None,
        use_fl: bool = True,
        with_mask: bool = False,
        num_sample_points: int = 12544,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        super().__init__()
        if cost_gain is None:
            cost_gain = {"class": 1, "bbox": 5, "giou": 2, "mask": 1, "dice": 1}
        missing = {"class", "bbox", "giou"} - set(cost_gain)
        if missing:
            raise ValueError(
                f"HungarianMatcher cost_gain lacks {sorted(missing)}; it needs weights for 'class', 'bbox' and "
                f"'giou' (and optionally 'mask', 'dice'), got {cost_gain}"
            )
        self.cost_gain = cost_gain
        self.use_fl = use_fl
        self.with_mask = with_mask
        self.num_sample_points = num_sample_points
        self.alpha = alpha
        self.gamma = gamma

    def forward(
        self,
        pred_bboxes: torch.Tensor,
        pred_scores: torch.Tensor,
        gt_bboxes: torch.Tensor,
        gt_cls: torch.Tensor,
        gt_groups: list[int],
        masks: torch.Tensor | None = None,
        gt_mask: list[torch.Tensor] | None = None,
    ) -> MatchIndices:
        """Per image, the matched (query indices, ground-truth indices).

        Args:
            pred_bboxes: (bs, nq, 4) predicted cxcywh boxes.
            pred_scores: (bs, nq, nc) class logits.
            gt_bboxes: (N, 4) ground-truth cxcywh boxes, grouped by image.
            gt_cls: (N,) ground-truth class ids.
            gt_groups: boxes per image, ``len(gt_groups) == bs`` and ``sum(gt_groups) == N``.
            masks: (bs, nq, h, w) predicted mask logits, only with ``with_mask``.
            gt_mask: per image (n_i, H, W) ground-truth masks, only with ``with_mask``.

        Returns:
            bs pairs of long tensors on the CPU, each of length ``min(nq, n_i)``; ground-truth
            indices are into the flattened (N,) ground truth, not per image. Images without ground
            truth get two empty tensors.
        """
        bs, nq, nc = pred_scores.shape
        _check_gt(pred_bboxes, pred_scores, gt_bboxes, gt_cls, gt_groups)
        check_finite_predictions(pred_bboxes, pred_scores)
        if sum(gt_groups) == 0:
            return [(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)) for _ in range(bs)]

        # float32 even under AMP: in half precision the 1e-8 guards of the focal cost round to zero.
        scores = pred_scores.detach().float().reshape(-1, nc)  # (bs*nq, nc)
        scores = scores.sigmoid() if self.use_fl else scores.softmax(-1)
        boxes = pred_bboxes.detach().float().reshape(-1, 4)  # (bs*nq, 4)
        gt_bboxes = gt_bboxes.float()

        cost = self.cost_gain["class"] * self._cost_class(scores[:, gt_cls.long().reshape(-1)])  # (bs*nq, N)
        cost = cost + self.cost_gain["bbox"] * (boxes.unsqueeze(1) - gt_bboxes.unsqueeze(0)).abs().sum(-1)
        giou = bbox_iou(boxes.unsqueeze(1), gt_bboxes.unsqueeze(0), xywh=True, GIoU=True).squeeze(-1)
        cost = cost + self.cost_gain["giou"] * (1.0 - giou)
        if self.with_mask:
            cost = cost + self._cost_mask(bs, gt_groups, masks, gt_mask)

        # Finite but degenerate boxes can still make a cost NaN or infinite, which linear_sum_assignment rejects.
        cost[cost.isnan() | cost.isinf()] = 0.0
        cost = cost.view(bs, nq, -1).cpu()

        offsets = [0]
        for n in gt_groups[:-1]:
            offsets.append(offsets[-1] + n)
        indices = []
        for i, (c, offset) in enumerate(zip(cost.split(list(gt_groups), -1), offsets)):
            query_idx, gt_idx = linear_sum_assignment(c[i])  # c[i]: (nq, n_i), this image's columns
            indices.append(
                (torch.as_tensor(query_idx, dtype=torch.long), torch.as_tensor(gt_idx, dtype=torch.long) + offset)
            )
        return indices

    def _cost_class(self, scores: torch.Tensor) -> torch.Tensor:
        """(bs*nq, N) cost of each query's probability for each ground-truth box's class."""
        if not self.use_fl:
            return -scores
        # Focal loss of calling the query positive minus that of calling it negative.
        pos = self.alpha * (1 - scores) ** self.gamma * -(scores + 1e-8).log()
        neg = (1 - self.alpha) * scores**self.gamma * -(1 - scores + 1e-8).log()
        return pos - neg

    def _cost_mask(
        self,
        bs: int,
        num_gts: list[int],
        masks: torch.Tensor | None,
        gt_mask: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        """(bs*nq, N) weighted mask BCE and dice costs on points sampled uniformly in each image."""
        if masks is None or gt_mask is None:
            shape = None if masks is None else tuple(masks.shape)
            got = f"masks={shape}, gt_mask={None if gt_mask is None else 'list'}"
            raise ValueError(
                "HungarianMatcher(with_mask=True) needs both `masks` (bs, nq, h, w) and `gt_mask` "
                f"(per image (n, H, W)); got {got}"
            )
        # All queries and boxes of one image share the same points so that costs are comparable.
        points = torch.rand(bs, 1, self.num_sample_points, 2, device=masks.device) * 2.0 - 1.0  # grid_sample coords
        pred = F.grid_sample(masks.detach().float(), points, align_corners=False).squeeze(-2).flatten(0, 1)
        gt_points = torch.cat([p.unsqueeze(0).expand(n, -1, -1, -1) for p, n in zip(points, num_gts) if n > 0])
        tgt = torch.cat([m for m in gt_mask if len(m)]).unsqueeze(1).float()  # (N, 1, H, W)
        tgt = F.grid_sample(tgt, gt_points, align_corners=False).flatten(1)  # (N, P)

        pos = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred), reduction="none")  # (bs*nq, P)
        neg = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none")
        cost_mask = (pos @ tgt.T + neg @ (1 - tgt).T) / self.num_sample_points

        prob = pred.sigmoid()
        overlap = 2 * prob @ tgt.T
        total = prob.sum(-1, keepdim=True) + tgt.sum(-1).unsqueeze(0)
        cost_dice = 1 - (overlap + 1) / (total + 1)
        return self.cost_gain.get("mask", 1) * cost_mask + self.cost_gain.get("dice", 1) * cost_dice


def _check_gt(
    pred_bboxes: torch.Tensor,
    pred_scores: torch.Tensor,
    gt_bboxes: torch.Tensor,
    gt_cls: torch.Tensor,
    gt_groups: list[int],
) -> None:
    """Raise ValueError naming the mismatch when predictions and ground truth do not fit together."""
    bs, nq, nc = pred_scores.shape
    if pred_bboxes.shape != (bs, nq, 4):
        raise ValueError(
            f"HungarianMatcher: pred_bboxes must be (bs, nq, 4) = ({bs}, {nq}, 4) to match pred_scores "
            f"{tuple(pred_scores.shape)}, got {tuple(pred_bboxes.shape)}"
        )
    if len(gt_groups) != bs:
        raise ValueError(f"HungarianMatcher: gt_groups has {len(gt_groups)} entries but the batch holds {bs} images")
    n = sum(gt_groups)
    if gt_bboxes.shape != (n, 4) or gt_cls.numel() != n:
        raise ValueError(
            f"HungarianMatcher: gt_groups sums to {n} boxes, so gt_bboxes must be ({n}, 4) and gt_cls ({n},); got "
            f"{tuple(gt_bboxes.shape)} and {tuple(gt_cls.shape)}"
        )
    if n and not 0 <= int(gt_cls.min()) <= int(gt_cls.max()) < nc:
        raise ValueError(
            f"HungarianMatcher: ground-truth class ids must lie in [0, {nc - 1}] for a model with nc={nc}, "
            f"got ids from {int(gt_cls.min())} to {int(gt_cls.max())}"
        )


def get_cdn_group(
    batch: dict,
    num_classes: int,
    num_queries: int,
    class_embed: torch.Tensor,
    num_dn: int = 100,
    cls_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
    training: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, dict | None]:
    """Contrastive denoising queries (RT-DETR / DINO) built from noised copies of the ground truth.

    Each of ``num_group = max(num_dn // max(gt_groups), 1)`` groups holds a positive and a negative
    copy of every box. Labels of all copies are replaced by a random class with probability
    ``cls_noise_ratio / 2``; box corners move by up to ``box_noise_scale`` half-sizes for positives and
    between one and two half-sizes for negatives, so positives should be reconstructed and negatives
    rejected. Copies are laid out per image: positive group g at rows ``g * max_n ...``, negative group
    g at rows ``(num_group + g) * max_n ...``, padding rows left zero.

    Args:
        batch: ``cls`` (N,) class ids, ``bboxes`` (N, 4) normalised cxcywh, ``batch_idx`` (N,) image
            of each box (sorted), ``gt_groups`` boxes per image.
        num_classes: number of classes; noised labels are drawn from [0, num_classes).
        num_queries: number of ordinary (matching) queries following the denoising ones.
        class_embed: (num_classes, hd) label embedding table (the decoder's denoising_class_embed).
        num_dn: requested number of denoising queries per copy type.
        cls_noise_ratio: twice the probability that a copy's label is resampled.
        box_noise_scale: box noise in units of half the box size.
        training: denoising only runs in training.

    Returns:
        dn_embed: (bs, num_dn_total, hd) label embeddings of the denoising queries.
        dn_bbox: (bs, num_dn_total, 4) their boxes in logit (inverse-sigmoid) space.
        attn_mask: (num_dn_total + num_queries,) * 2 bool, True where attention is blocked.
        dn_meta: ``dn_pos_idx`` per-image (num_group * n_i,) CPU indices of the positive queries,
            ``dn_num_group``, ``dn_num_split`` = [num_dn_total, num_queries].
        Four Nones when not training, ``num_dn <= 0`` or the batch has no boxes.
    """
    if not training or num_dn <= 0:
        return None, None, None, None
    for key in ("cls", "bboxes", "batch_idx", "gt_groups"):
        if key not in batch:
            raise KeyError(
                f"get_cdn_group: batch lacks '{key}'; it needs 'cls', 'bboxes', 'batch_idx' and 'gt_groups', "
                f"got keys {sorted(batch)}"
            )
    gt_groups = [int(n) for n in batch["gt_groups"]]
    total = sum(gt_groups)
    max_n = max(gt_groups, default=0)
    if max_n == 0:
        return None, None, None, None

    num_group = max(num_dn // max_n, 1)
    bs = len(gt_groups)
    copies = 2 * num_group
    dn_cls = batch["cls"].long().reshape(-1).repeat(copies)  # (copies*N,)
    dn_bbox = batch["bboxes"].reshape(-1, 4).repeat(copies, 1)  # (copies*N, 4)
    dn_b_idx = batch["batch_idx"].long().reshape(-1).repeat(copies)  # (copies*N,)

    if cls_noise_ratio > 0:
        dn_cls = _noise_labels(dn_cls, num_classes, cls_noise_ratio * 0.5)
    if box_noise_scale > 0:
        dn_bbox = _noise_boxes(dn_bbox, num_group * total, box_noise_scale)
    dn_bbox = torch.logit(dn_bbox, eps=1e-6)

    num_dn_total = max_n * copies
    rows_in_image = torch.cat([torch.arange(n, dtype=torch.long) for n in gt_groups])  # (N,) row within image
    copy_offsets = [rows_in_image + max_n * c for c in range(copies)]
    rows = torch.cat(copy_offsets).to(dn_b_idx.device)  # (copies*N,)

    dn_embed = torch.zeros(bs, num_dn_total, class_embed.shape[-1], device=class_embed.device)
    padded_bbox = torch.zeros(bs, num_dn_total, 4, device=class_embed.device)
    dn_embed[dn_b_idx, rows] = class_embed[dn_cls.to(class_embed.device)].to(dn_embed.dtype)
    padded_bbox[dn_b_idx, rows] = dn_bbox.to(padded_bbox)

    pos_idx = torch.stack(copy_offsets[:num_group])  # (num_group, N): positives come first
    dn_meta = {
        "dn_pos_idx": [p.reshape(-1) for p in pos_idx.split(gt_groups, dim=1)],
        "dn_num_group": num_group,
        "dn_num_split": [num_dn_total, num_queries],
    }
    attn_mask = _dn_attn_mask(num_dn_total, num_queries, num_group, 2 * max_n, class_embed.device)
    return dn_embed, padded_bbox, attn_mask, dn_meta


def _noise_labels(dn_cls: torch.Tensor, num_classes: int, prob: float) -> torch.Tensor:
    """Copy of (M,) labels where each is replaced, with probability ``prob``, by a uniform random class.

    The draw order (CPU uniform, then labels on the labels' device) follows Ultralytics so that a
    given seed noises the same queries.
    """
    flip = (torch.rand(dn_cls.shape) < prob).nonzero().squeeze(-1).to(dn_cls.device)
    dn_cls = dn_cls.clone()
    dn_cls[flip] = torch.randint_like(flip, 0, num_classes, dtype=dn_cls.dtype, device=dn_cls.device)
    return dn_cls


def _noise_boxes(dn_bbox: torch.Tensor, num_pos: int, scale: float) -> torch.Tensor:
    """(M, 4) cxcywh boxes with each corner shifted by a random signed fraction of the half-size.

    Rows before ``num_pos`` are positives and move by [0, scale) half-sizes; the rest are
    negatives and move by [scale, 2 * scale). Corners are clipped to the image.
    """
    corners = xywh2xyxy(dn_bbox)  # (M, 4)
    half_size = (dn_bbox[..., 2:] * 0.5).repeat(1, 2) * scale  # (M, 4): (w/2, h/2, w/2, h/2)
    sign = torch.randint_like(dn_bbox, 0, 2) * 2.0 - 1.0
    magnitude = torch.rand_like(dn_bbox)
    magnitude[num_pos:] += 1.0
    corners = (corners + sign * magnitude * half_size).clip(0.0, 1.0)
    return xyxy2xywh(corners)


def _dn_attn_mask(
    num_dn: int,
    num_queries: int,
    num_group: int,
    group_size: int,
    device: torch.device,
) -> torch.Tensor:
    """(num_dn + num_queries,) * 2 bool mask, True = blocked.

    Matching queries must not see any denoising query (they would read the answers), and each
    block of ``group_size`` denoising rows sees only itself among the denoising queries.
    """
    size = num_dn + num_queries
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[num_dn:, :num_dn] = True
    for g in range(num_group):
        start, end = g * group_size, (g + 1) * group_size
        mask[start:end, :start] = True
        mask[start:end, end:num_dn] = True
    return mask.to(device)
