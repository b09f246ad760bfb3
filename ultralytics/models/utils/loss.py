"""Set-prediction criterion of DETR-style detectors, with the denoising part RT-DETR adds.

Every decoder layer (and, for RT-DETR, the encoder's top-k proposals placed in front as layer 0)
is matched one-to-one to the ground truth and scored with three terms: a classification loss, an
L1 box loss and a GIoU box loss. The last layer gives the main terms; the earlier ones are summed
into the ``*_aux`` entries. Denoising queries know their box, skip matching and give the ``*_dn``
entries.

Ground truth travels as a dict (``cls`` (N,), ``bboxes`` (N, 4) normalised cxcywh, ``gt_groups``
boxes per image), predictions as tensors, the result as a dict of named scalar losses.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ultralytics.utils.loss import FocalLoss, VarifocalLoss
from ultralytics.utils.ops import bbox_iou

from .ops import HungarianMatcher, MatchIndices

# The three terms scored per layer, in the order they appear in the result.
TERMS = ("loss_class", "loss_bbox", "loss_giou")
# Weights of the loss terms when none are given (mask and dice are unused by box-only models).
DEFAULT_LOSS_GAIN = {"class": 1, "bbox": 5, "giou": 2, "no_object": 0.1, "mask": 1, "dice": 1}
# Weights of the matching cost: class confidence counts twice as much in matching as in the loss.
MATCH_COST_GAIN = {"class": 2, "bbox": 5, "giou": 2}


def matchability_aware_loss(
    logits: torch.Tensor,
    quality: torch.Tensor,
    label: torch.Tensor,
    gamma: float = 1.5,
) -> torch.Tensor:
    """DEIM's matchability-aware loss (arXiv 2412.04234), averaged over queries and summed over the rest.

    For the matched class of a matched query (label 1, IoU q): -q^g log p - (1 - q^g) log(1 - p);
    for every other entry: -p^g log(1 - p). Unlike the varifocal loss, a positive is not weighted
    by q, so a poorly localised match (small q) still pulls its score up towards q^g.

    Args:
        logits: (bs, nq, nc) class logits.
        quality: (bs, nq, nc) IoU of the matched box on the matched class, 0 elsewhere.
        label: (bs, nq, nc) one-hot of the matched class (all zeros for unmatched queries).
        gamma: the exponent g, applied to the target and to the negatives' focusing weight.
    """
    # float32 even under autocast: the logs of small probabilities need the range
    with torch.autocast(logits.device.type, enabled=False):
        logits, label = logits.float(), label.float()
        target = quality.float().pow(gamma) * label  # (bs, nq, nc)
        weight = logits.sigmoid().pow(gamma).detach() * (1 - label) + label
        bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
    return bce.mean(1).sum()


def _flatten_matches(indices: MatchIndices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image (query, ground-truth) pairs -> (image index, query index, ground-truth index), each (M,)."""
    queries = [q for q, _ in indices]
    image_idx = torch.cat([torch.full_like(q, image) for image, q in enumerate(queries)])
    return image_idx, torch.cat(queries), torch.cat([g for _, g in indices])


class DETRLoss(nn.Module):
    """Hungarian-matched classification, L1 and GIoU losses over decoder layers.

    Args:
        nc: number of classes.
        loss_gain: weights of the loss terms; None gives ``DEFAULT_LOSS_GAIN``.
        aux_loss: also score every layer but the last (``*_aux`` keys).
        use_fl: classification by focal loss (varifocal with ``use_vfl``); False uses plain BCE.
        use_vfl: varifocal loss with the matched box's IoU as target (needs ``use_fl``).
        use_uni_match: match the auxiliary layers once, on layer ``uni_match_ind``, instead of per layer.
        uni_match_ind: the layer used with ``use_uni_match``.
        mal_gamma: when given, the matchability-aware loss (DEIM) with this exponent replaces the
            focal/varifocal classification term (see ``matchability_aware_loss``).
    """

    def __init__(
        self,
        nc: int = 80,
        loss_gain: dict[str, float] | None = None,
        aux_loss: bool = True,
        use_fl: bool = True,
        use_vfl: bool = False,
        use_uni_match: bool = False,
        uni_match_ind: int = 0,
        mal_gamma: float | None = None,
    ):
        super().__init__()
        gains = dict(DEFAULT_LOSS_GAIN) if loss_gain is None else loss_gain
        missing = {"class", "bbox", "giou"}.difference(gains)
        if missing:
            raise ValueError(
                f"DETRLoss loss_gain lacks {sorted(missing)}; it needs weights for 'class', 'bbox' and 'giou', "
                f"got {gains}"
            )
        self.nc = nc
        self.matcher = HungarianMatcher(cost_gain=dict(MATCH_COST_GAIN))
        self.loss_gain = gains
        self.aux_loss = aux_loss
        # the focal criteria are modules so that pickled criteria keep their class paths
        self.fl = FocalLoss() if use_fl else None
        self.vfl = VarifocalLoss() if use_vfl else None
        self.use_uni_match, self.uni_match_ind = use_uni_match, uni_match_ind
        # a plain float, not a module: checkpoints pickle the criterion, and upstream must unpickle it
        self.mal_gamma = mal_gamma
        self.device = None

    # ------------------------------------------------------------------------------ one layer
    def _match(self, boxes: torch.Tensor, scores: torch.Tensor, gt: dict) -> MatchIndices:
        """Hungarian assignment of one layer's (bs, nq) queries to the ground truth."""
        return self.matcher(boxes, scores, gt["bboxes"], gt["cls"], gt["gt_groups"])

    def _class_term(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        quality: torch.Tensor,
        num_matched: int,
    ) -> torch.Tensor:
        """Weighted classification loss of one layer.

        Args:
            logits: (bs, nq, nc).
            labels: (bs, nq) matched class per query, ``nc`` (no object) for unmatched ones.
            quality: (bs, nq) IoU of each matched query with its box, 0 elsewhere.
            num_matched: matched boxes in the batch.
        """
        bs, nq = logits.shape[:2]
        # the extra "no object" column is dropped, so unmatched queries get an all-zero target row
        one_hot = F.one_hot(labels.long(), self.nc + 1)[..., : self.nc]  # (bs, nq, nc) int64
        soft_target = quality.view(bs, nq, 1) * one_hot  # (bs, nq, nc)
        if self.mal_gamma is not None:
            loss = matchability_aware_loss(logits, soft_target, one_hot, self.mal_gamma)
            loss = loss / (max(num_matched, 1) / nq)
        elif self.fl is None:
            loss = F.binary_cross_entropy_with_logits(logits, soft_target, reduction="none").mean(1).sum()
        else:
            use_vfl = self.vfl is not None and num_matched > 0
            loss = self.vfl(logits, soft_target, one_hot) if use_vfl else self.fl(logits, one_hot.float())
            # the focal losses average over queries; rescale to a sum normalised per matched box
            loss = loss / (max(num_matched, 1) / nq)
        return loss.squeeze() * self.loss_gain["class"]

    def _box_terms(self, boxes: torch.Tensor, gt_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted (L1, GIoU) losses of (M, 4) matched cxcywh pairs, each summed and divided by M."""
        m = len(gt_boxes)
        if m == 0:
            zero = torch.tensor(0.0, device=self.device)
            return zero, zero.clone()
        l1 = self.loss_gain["bbox"] * F.l1_loss(boxes, gt_boxes, reduction="sum") / m
        giou = (1.0 - bbox_iou(boxes, gt_boxes, xywh=True, GIoU=True)).sum() / m
        return l1.squeeze(), (self.loss_gain["giou"] * giou).squeeze()

    def _layer_terms(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        gt: dict,
        match_indices: MatchIndices | None = None,
    ) -> dict[str, torch.Tensor]:
        """The three TERMS of one layer: boxes (bs, nq, 4), scores (bs, nq, nc); matched unless given."""
        if match_indices is None:
            match_indices = self._match(boxes, scores, gt)
        image_idx, query_idx, gt_idx = _flatten_matches(match_indices)
        matched = boxes[image_idx, query_idx]  # (M, 4)
        targets = gt["bboxes"][gt_idx]  # (M, 4)

        # per-query class and quality targets: unmatched queries stay "no object" with quality 0
        labels = torch.full(scores.shape[:2], self.nc, device=scores.device, dtype=gt["cls"].dtype)
        labels[image_idx, query_idx] = gt["cls"][gt_idx]
        quality = torch.zeros(scores.shape[:2], device=scores.device)
        if len(targets):
            # the varifocal target is how well the query already localises its box, not a gradient path
            iou = bbox_iou(matched.detach(), targets, xywh=True).squeeze(-1)
            quality[image_idx, query_idx] = iou.to(quality)

        l1, giou = self._box_terms(matched, targets)
        return dict(zip(TERMS, (self._class_term(scores, labels, quality, len(targets)), l1, giou)))

    # ------------------------------------------------------------------------------ all layers
    def _aux_terms(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        gt: dict,
        match_indices: MatchIndices | None,
    ) -> torch.Tensor:
        """(3,) sums of the TERMS over the (L, bs, nq, ...) auxiliary layers, accumulated layer by layer."""
        if match_indices is None and self.use_uni_match:
            match_indices = self._match(boxes[self.uni_match_ind], scores[self.uni_match_ind], gt)
        totals = torch.zeros(len(TERMS), device=boxes.device)
        for layer_boxes, layer_scores in zip(boxes, scores):
            terms = self._layer_terms(layer_boxes, layer_scores, gt, match_indices)
            totals = totals + torch.stack([terms[name] for name in TERMS])
        return totals

    def forward(
        self,
        pred_bboxes: torch.Tensor,
        pred_scores: torch.Tensor,
        batch: dict,
        postfix: str = "",
        **kwargs,
    ) -> dict[str, torch.Tensor]:
        """Losses of the last layer and (with ``aux_loss``) the sums over the earlier ones.

        Args:
            pred_bboxes: (nl, bs, nq, 4) cxcywh boxes per layer, the last being the final output.
            pred_scores: (nl, bs, nq, nc) class logits per layer.
            batch: ``cls`` (N,) long, ``bboxes`` (N, 4) cxcywh, ``gt_groups`` boxes per image.
            postfix: appended to every key (``_dn`` for the denoising queries).
            **kwargs: ``match_indices`` to reuse a fixed assignment instead of matching.
        """
        self.device = pred_bboxes.device
        fixed = kwargs.get("match_indices")
        final = self._layer_terms(pred_bboxes[-1], pred_scores[-1], batch, fixed)
        losses = {f"{name}{postfix}": value for name, value in final.items()}
        if self.aux_loss:
            totals = self._aux_terms(pred_bboxes[:-1], pred_scores[:-1], batch, fixed)
            losses.update({f"{name}_aux{postfix}": total for name, total in zip(TERMS, totals)})
        return losses


class RTDETRDetectionLoss(DETRLoss):
    """DETRLoss plus the same losses on the contrastive denoising queries (``*_dn`` keys)."""

    def forward(
        self,
        preds: tuple[torch.Tensor, torch.Tensor],
        batch: dict,
        dn_bboxes: torch.Tensor | None = None,
        dn_scores: torch.Tensor | None = None,
        dn_meta: dict | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss dict with ``loss_{class,bbox,giou}``, their ``_aux``, and ``_dn`` versions of all six.

        Args:
            preds: pred_bboxes (nl, bs, nq, 4) and pred_scores (nl, bs, nq, nc); layer 0 is the
                encoder's proposals, the last the final decoder layer.
            batch: ``cls`` (N,), ``bboxes`` (N, 4) normalised cxcywh, ``gt_groups`` boxes per image.
            dn_bboxes: (nl_dec, bs, num_dn, 4) decoder boxes of the denoising queries.
            dn_scores: (nl_dec, bs, num_dn, nc) their logits.
            dn_meta: from ``get_cdn_group``; None (evaluation) makes every ``_dn`` loss zero.
        """
        losses = super().forward(*preds, batch)
        if dn_meta is None:
            denoising = {f"{name}_dn": torch.tensor(0.0, device=self.device) for name in losses}
        else:
            # each positive denoising query is paired with the box it was made from
            known = self.get_dn_match_indices(dn_meta["dn_pos_idx"], dn_meta["dn_num_group"], batch["gt_groups"])
            denoising = super().forward(dn_bboxes, dn_scores, batch, postfix="_dn", match_indices=known)
        losses.update(denoising)
        return losses

    @staticmethod
    def targets_from_batch(batch: dict) -> dict:
        """The ground truth of a dataloader batch in the form the decoder (denoising) and the loss read.

        batch: img (bs, 3, H, W), cls (N, 1), bboxes (N, 4) normalised xywh, batch_idx (N,).
        Returns cls (N,) long, bboxes (N, 4), batch_idx (N,) long and gt_groups (boxes per image), on img's device.
        """
        device, bs = batch["img"].device, len(batch["img"])
        image_of_box = batch["batch_idx"].to(device, dtype=torch.long).view(-1)  # (N,)
        return {
            "cls": batch["cls"].to(device, dtype=torch.long).view(-1),  # (N,)
            "bboxes": batch["bboxes"].to(device=device),  # (N, 4)
            "batch_idx": image_of_box,
            "gt_groups": torch.bincount(image_of_box, minlength=bs).tolist()[:bs],
        }

    def from_decoder(self, preds, targets: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, detached [giou, cls, l1]) from what RTDETRDecoder returned for this batch.

        preds: the decoder's training output, or its evaluation output (y, training output).
        """
        from ultralytics.nn.modules.head import RTDETRDecoder

        out = RTDETRDecoder.loss_inputs(preds)
        losses = self(
            (out["boxes"], out["scores"]),
            targets,
            dn_bboxes=out["dn_boxes"],
            dn_scores=out["dn_scores"],
            dn_meta=out["dn_meta"],
        )
        items = torch.stack([losses[k].detach() for k in ("loss_giou", "loss_class", "loss_bbox")])
        return sum(losses.values()), items

    @staticmethod
    def get_dn_match_indices(
        dn_pos_idx: list[torch.Tensor],
        dn_num_group: int,
        gt_groups: list[int],
    ) -> MatchIndices:
        """Pair every positive denoising query with the box it was made from.

        Args:
            dn_pos_idx: per image, (dn_num_group * n_i,) positive query indices, group-major.
            dn_num_group: number of denoising groups.
            gt_groups: boxes per image.

        Returns:
            Per image (query indices, flattened ground-truth indices), empty for images without boxes.
        """
        if len(dn_pos_idx) != len(gt_groups):
            raise ValueError(
                f"get_dn_match_indices: dn_pos_idx covers {len(dn_pos_idx)} images but gt_groups {len(gt_groups)}; "
                "dn_meta must come from get_cdn_group on the same batch"
            )
        pairs = []
        first_box = 0  # index of the image's first box in the flattened ground truth
        for image, (queries, n_boxes) in enumerate(zip(dn_pos_idx, gt_groups)):
            # group-major: the image's boxes once per denoising group
            boxes = torch.arange(first_box, first_box + n_boxes, dtype=torch.long).repeat(dn_num_group)
            first_box += n_boxes
            if n_boxes == 0:
                queries = torch.zeros(0, dtype=torch.long)
            elif len(queries) != len(boxes):
                raise ValueError(
                    f"get_dn_match_indices: image {image} has {len(queries)} positive denoising queries, "
                    f"expected {n_boxes} boxes x {dn_num_group} groups = {len(boxes)}"
                )
            pairs.append((queries, boxes))
        return pairs
