"""Set-prediction criterion of DETR-style detectors, with the denoising part RT-DETR adds.

Every decoder layer (and, for RT-DETR, the encoder's top-k proposals placed in front as layer 0)
is matched to the ground truth and scored with a classification loss, an L1 box loss and a GIoU
box loss. The last layer gives the main losses; the others are summed into the ``*_aux`` entries.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ultralytics.utils.loss import FocalLoss, VarifocalLoss
from ultralytics.utils.metrics import bbox_iou

from .ops import HungarianMatcher, MatchIndices


class DETRLoss(nn.Module):
    """Hungarian-matched classification, L1 and GIoU losses over decoder layers.

    Args:
        nc: number of classes.
        loss_gain: weights of the loss terms; None gives
            ``{class: 1, bbox: 5, giou: 2, no_object: 0.1, mask: 1, dice: 1}``.
        aux_loss: also score every layer but the last (``*_aux`` keys).
        use_fl: classification by focal loss (varifocal with ``use_vfl``); False uses plain BCE.
        use_vfl: varifocal loss with the matched box's IoU as target (needs ``use_fl``).
        use_uni_match: match the auxiliary layers once, on layer ``uni_match_ind``, instead of per layer.
        uni_match_ind: the layer used with ``use_uni_match``.
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
    ):
        super().__init__()
        if loss_gain is None:
            loss_gain = {"class": 1, "bbox": 5, "giou": 2, "no_object": 0.1, "mask": 1, "dice": 1}
        missing = {"class", "bbox", "giou"} - set(loss_gain)
        if missing:
            raise ValueError(
                f"DETRLoss loss_gain lacks {sorted(missing)}; it needs weights for 'class', 'bbox' and 'giou', "
                f"got {loss_gain}"
            )
        self.nc = nc
        self.matcher = HungarianMatcher(cost_gain={"class": 2, "bbox": 5, "giou": 2})
        self.loss_gain = loss_gain
        self.aux_loss = aux_loss
        self.fl = FocalLoss() if use_fl else None
        self.vfl = VarifocalLoss() if use_vfl else None
        self.use_uni_match = use_uni_match
        self.uni_match_ind = uni_match_ind
        self.device = None

    def _get_loss_class(
        self,
        pred_scores: torch.Tensor,
        targets: torch.Tensor,
        gt_scores: torch.Tensor,
        num_gts: int,
        postfix: str = "",
    ) -> dict[str, torch.Tensor]:
        """Classification loss of one layer.

        Args:
            pred_scores: (bs, nq, nc) logits.
            targets: (bs, nq) matched class per query, ``nc`` for unmatched ones.
            gt_scores: (bs, nq) IoU of each matched query with its box, 0 elsewhere.
            num_gts: number of matched boxes in the batch.
        """
        bs, nq = pred_scores.shape[:2]
        # One extra column absorbs the "no object" class and is then dropped.
        one_hot = torch.zeros((bs, nq, self.nc + 1), dtype=torch.int64, device=targets.device)
        one_hot.scatter_(2, targets.unsqueeze(-1), 1)
        one_hot = one_hot[..., :-1]  # (bs, nq, nc)
        gt_scores = gt_scores.view(bs, nq, 1) * one_hot  # (bs, nq, nc)

        if self.fl:
            if num_gts and self.vfl:
                loss_cls = self.vfl(pred_scores, gt_scores, one_hot)
            else:
                loss_cls = self.fl(pred_scores, one_hot.float())
            # The losses average over queries; this turns that into a sum normalised per box.
            loss_cls = loss_cls / (max(num_gts, 1) / nq)
        else:
            loss_cls = F.binary_cross_entropy_with_logits(pred_scores, gt_scores, reduction="none").mean(1).sum()
        return {f"loss_class{postfix}": loss_cls.squeeze() * self.loss_gain["class"]}

    def _get_loss_bbox(
        self,
        pred_bboxes: torch.Tensor,
        gt_bboxes: torch.Tensor,
        postfix: str = "",
    ) -> dict[str, torch.Tensor]:
        """L1 and GIoU losses, each summed over the (M, 4) matched pairs and divided by M."""
        name_bbox, name_giou = f"loss_bbox{postfix}", f"loss_giou{postfix}"
        if len(gt_bboxes) == 0:
            zero = torch.tensor(0.0, device=self.device)
            return {name_bbox: zero, name_giou: zero.clone()}
        n = len(gt_bboxes)
        loss_bbox = self.loss_gain["bbox"] * F.l1_loss(pred_bboxes, gt_bboxes, reduction="sum") / n
        loss_giou = (1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)).sum() / n
        return {name_bbox: loss_bbox.squeeze(), name_giou: (self.loss_gain["giou"] * loss_giou).squeeze()}

    def _get_loss_aux(
        self,
        pred_bboxes: torch.Tensor,
        pred_scores: torch.Tensor,
        gt_bboxes: torch.Tensor,
        gt_cls: torch.Tensor,
        gt_groups: list[int],
        match_indices: MatchIndices | None = None,
        postfix: str = "",
        masks: torch.Tensor | None = None,
        gt_mask: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses of the auxiliary layers (nl-1, bs, nq, ...) summed per term into ``*_aux`` keys."""
        if match_indices is None and self.use_uni_match:
            match_indices = self.matcher(
                pred_bboxes[self.uni_match_ind],
                pred_scores[self.uni_match_ind],
                gt_bboxes,
                gt_cls,
                gt_groups,
                masks=masks[self.uni_match_ind] if masks is not None else None,
                gt_mask=gt_mask,
            )
        names = ("loss_class", "loss_bbox", "loss_giou")
        sums = torch.zeros(len(names), device=pred_bboxes.device)
        for i, (aux_bboxes, aux_scores) in enumerate(zip(pred_bboxes, pred_scores)):
            layer = self._get_loss(
                aux_bboxes,
                aux_scores,
                gt_bboxes,
                gt_cls,
                gt_groups,
                masks=masks[i] if masks is not None else None,
                gt_mask=gt_mask,
                postfix=postfix,
                match_indices=match_indices,
            )
            for k, name in enumerate(names):
                sums[k] += layer[f"{name}{postfix}"]
        return {f"{name}_aux{postfix}": sums[k] for k, name in enumerate(names)}

    @staticmethod
    def _get_index(match_indices: MatchIndices) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """((image index, query index), flattened ground-truth index) of every matched pair."""
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(match_indices)])
        src_idx = torch.cat([src for src, _ in match_indices])
        dst_idx = torch.cat([dst for _, dst in match_indices])
        return (batch_idx, src_idx), dst_idx

    def _get_loss(
        self,
        pred_bboxes: torch.Tensor,
        pred_scores: torch.Tensor,
        gt_bboxes: torch.Tensor,
        gt_cls: torch.Tensor,
        gt_groups: list[int],
        masks: torch.Tensor | None = None,
        gt_mask: list[torch.Tensor] | None = None,
        postfix: str = "",
        match_indices: MatchIndices | None = None,
    ) -> dict[str, torch.Tensor]:
        """All losses of one layer: pred_bboxes (bs, nq, 4), pred_scores (bs, nq, nc)."""
        if match_indices is None:
            match_indices = self.matcher(
                pred_bboxes, pred_scores, gt_bboxes, gt_cls, gt_groups, masks=masks, gt_mask=gt_mask
            )
        idx, gt_idx = self._get_index(match_indices)
        matched_bboxes, matched_gt = pred_bboxes[idx], gt_bboxes[gt_idx]  # (M, 4) each

        bs, nq = pred_scores.shape[:2]
        targets = torch.full((bs, nq), self.nc, device=pred_scores.device, dtype=gt_cls.dtype)  # (bs, nq)
        targets[idx] = gt_cls[gt_idx]
        gt_scores = torch.zeros((bs, nq), device=pred_scores.device)  # (bs, nq)
        if len(matched_gt):
            # The varifocal target is how well the query already localises its box, not a gradient path.
            gt_scores[idx] = bbox_iou(matched_bboxes.detach(), matched_gt, xywh=True).squeeze(-1).to(gt_scores)
        return {
            **self._get_loss_class(pred_scores, targets, gt_scores, len(matched_gt), postfix),
            **self._get_loss_bbox(matched_bboxes, matched_gt, postfix),
        }

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
        match_indices = kwargs.get("match_indices", None)
        gt_cls, gt_bboxes, gt_groups = batch["cls"], batch["bboxes"], batch["gt_groups"]
        total_loss = self._get_loss(
            pred_bboxes[-1], pred_scores[-1], gt_bboxes, gt_cls, gt_groups, postfix=postfix, match_indices=match_indices
        )
        if self.aux_loss:
            total_loss.update(
                self._get_loss_aux(
                    pred_bboxes[:-1], pred_scores[:-1], gt_bboxes, gt_cls, gt_groups, match_indices, postfix
                )
            )
        return total_loss


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
        pred_bboxes, pred_scores = preds
        total_loss = super().forward(pred_bboxes, pred_scores, batch)

        if dn_meta is None:
            total_loss.update({f"{k}_dn": torch.tensor(0.0, device=self.device) for k in list(total_loss)})
            return total_loss

        # Denoising queries know their ground truth, so they skip matching.
        match_indices = self.get_dn_match_indices(dn_meta["dn_pos_idx"], dn_meta["dn_num_group"], batch["gt_groups"])
        total_loss.update(super().forward(dn_bboxes, dn_scores, batch, postfix="_dn", match_indices=match_indices))
        return total_loss

    @staticmethod
    def targets_from_batch(batch: dict) -> dict:
        """The ground truth of a dataloader batch in the form the decoder (denoising) and the loss read.

        batch: img (bs, 3, H, W), cls (N, 1), bboxes (N, 4) normalised xywh, batch_idx (N,).
        Returns cls (N,) long, bboxes (N, 4), batch_idx (N,) long and gt_groups (boxes per image), on img's device.
        """
        img = batch["img"]
        batch_idx = batch["batch_idx"].to(img.device, dtype=torch.long).view(-1)  # (N,)
        return {
            "cls": batch["cls"].to(img.device, dtype=torch.long).view(-1),  # (N,)
            "bboxes": batch["bboxes"].to(device=img.device),  # (N, 4)
            "batch_idx": batch_idx,
            "gt_groups": torch.bincount(batch_idx, minlength=len(img)).tolist()[: len(img)],
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
        indices = []
        first = 0  # index of the image's first box in the flattened ground truth
        for i, num_gt in enumerate(gt_groups):
            if num_gt > 0:
                gt_idx = (torch.arange(num_gt, dtype=torch.long) + first).repeat(dn_num_group)
                if len(dn_pos_idx[i]) != len(gt_idx):
                    raise ValueError(
                        f"get_dn_match_indices: image {i} has {len(dn_pos_idx[i])} positive denoising queries, "
                        f"expected {num_gt} boxes x {dn_num_group} groups = {len(gt_idx)}"
                    )
                indices.append((dn_pos_idx[i], gt_idx))
            else:
                indices.append((torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
            first += num_gt
        return indices
