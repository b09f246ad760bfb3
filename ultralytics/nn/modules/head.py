"""RT-DETR's detection head.

The head turns the neck's feature maps into boxes in four steps, each a method below:

1. `_get_encoder_input`: project every level to the hidden width and flatten all levels into one
   token sequence;
2. `_get_decoder_input`: score every token as an encoder proposal (one anchor per feature-map cell)
   and keep the `nq` best as the decoder's initial queries, with the denoising queries in front;
3. the deformable decoder refines those queries layer by layer;
4. `loss_inputs` (training) or the inference tensor (evaluation) names what came out.

Submodule names and their creation order are those of the released checkpoints.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn as nn

from ultralytics.utils.precision import float32_like, run_in_float32

from .transformer import MLP, Activation, DeformableTransformerDecoder, DeformableTransformerDecoderLayer
from .utils import bias_init_with_prob, linear_init
from .yaml_args import YamlArgs

__all__ = ("RTDETRDecoder",)

def _box_mlp(hd: int) -> MLP:
    """Box regression head: hidden features -> (cx, cy, w, h) delta in logit space."""
    return MLP(hd, hd, 4, num_layers=3)


def _level_projection(c_in: int, hd: int) -> nn.Sequential:
    """1x1 bias-free Conv2d + BatchNorm taking one feature level to the hidden width."""
    return nn.Sequential(nn.Conv2d(c_in, hd, kernel_size=1, bias=False), nn.BatchNorm2d(hd))


def _split_denoising(t: torch.Tensor, split: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, bs, num_dn + nq, ...) -> denoising part, matching part (the denoising queries come first)."""
    dn_part, match_part = t.split(split, dim=2)
    return dn_part, match_part


def _check_settings(nc, ch, nq) -> None:
    """Raise ValueError for head settings no model can be built with."""
    if not isinstance(nc, numbers.Integral) or isinstance(nc, bool) or nc < 1:
        raise ValueError(f"RTDETRDecoder: nc (number of classes) must be a positive integer, got {nc!r}")
    if len(ch) < 1:
        raise ValueError("RTDETRDecoder: ch must list the channels of at least one input feature map")
    if nq < 1:
        raise ValueError(f"RTDETRDecoder: nq (number of queries) must be >= 1, got {nq}")


class RTDETRDecoder(nn.Module):
    """Real-time DETR decoder head.

    Args:
        nc: number of classes.
        ch: channels of the input feature maps, one per level (strides 8/16/32 in the stock yamls).
        hd: hidden dim. nq: number of queries. ndp: sampling points per head and level. nh: attention heads.
        ndl: decoder layers. d_ffn: decoder feed-forward width. dropout, act: decoder layer settings.
        eval_idx: decoder layer whose output is returned in eval.
        nd: number of denoising queries (training only); label_noise_ratio, box_noise_scale: their noise.
        learnt_init_query: learn the initial query content instead of taking the selected encoder features.

    forward(x, batch) in training returns (dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta):
        dec_bboxes (ndl, bs, num_dn + nq, 4) sigmoid cxcywh, dec_scores (ndl, bs, num_dn + nq, nc) logits,
        enc_bboxes (bs, nq, 4), enc_scores (bs, nq, nc) logits, dn_meta a dict or None.
    In eval it returns (y, x): y (bs, nq, 4 + nc) = normalised cxcywh boxes then sigmoid scores, and x the
    training tuple (with a single decoder layer); with `export` set it returns y only.

    When the feature maps hold fewer anchors than `nq` (small images, e.g. 64x64 has 8*8 + 4*4 + 2*2 = 84), the
    nq query slots are filled by cycling through all anchors in descending score order, so the output shapes do
    not depend on the image size. With at least nq anchors the selection is a plain top-k.
    """

    export = False  # set by the exporter: forward returns y only
    shapes = []  # feature-map shapes the cached anchors were built for (per instance once set)
    anchors = torch.empty(0)  # cached (1, num_anchors, 4) logit-space anchors
    dynamic = False  # rebuild anchors on every call (dynamic-shape export)

    yaml_args = YamlArgs("decoder", example="[[21, 24, 27], 1, {name}, [nc]]")

    def __init__(
        self,
        nc: int = 80,
        ch: tuple[int, ...] | list[int] = (512, 1024, 2048),
        hd: int = 256,
        nq: int = 300,
        ndp: int = 4,
        nh: int = 8,
        ndl: int = 6,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        act: Activation = nn.ReLU,
        eval_idx: int = -1,
        nd: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        learnt_init_query: bool = False,
    ) -> None:
        super().__init__()
        _check_settings(nc, ch, nq)
        self.hidden_dim, self.nhead, self.nl, self.nc = hd, nh, len(ch), nc
        self.num_queries, self.num_decoder_layers = nq, ndl

        # Modules in checkpoint order (it is also the order of the random initial draws).
        self.input_proj = nn.ModuleList(_level_projection(c, hd) for c in ch)
        layer = DeformableTransformerDecoderLayer(hd, nh, d_ffn, dropout, act, n_levels=self.nl, n_points=ndp)
        self.decoder = DeformableTransformerDecoder(hd, layer, ndl, eval_idx)
        # denoising: labels are embedded by class, boxes come noised from the ground truth
        self.denoising_class_embed = nn.Embedding(nc, hd)
        self.num_denoising, self.label_noise_ratio, self.box_noise_scale = nd, label_noise_ratio, box_noise_scale
        self.learnt_init_query = learnt_init_query
        if learnt_init_query:
            self.tgt_embed = nn.Embedding(nq, hd)
        self.query_pos_head = MLP(4, 2 * hd, hd, num_layers=2)
        # encoder proposals: token projection, class logits, box delta on the anchor
        self.enc_output = nn.Sequential(nn.Linear(hd, hd), nn.LayerNorm(hd))
        self.enc_score_head = nn.Linear(hd, nc)
        self.enc_bbox_head = _box_mlp(hd)
        # one class and one box head per decoder layer
        self.dec_score_head = nn.ModuleList(nn.Linear(hd, nc) for _ in range(ndl))
        self.dec_bbox_head = nn.ModuleList(_box_mlp(hd) for _ in range(ndl))

        self._reset_parameters()

    # -------------------------------------------------------------------------------- output naming
    @staticmethod
    def loss_inputs(preds) -> dict:
        """Name the parts of this decoder's output for the loss.

        preds: the training output (dec_boxes, dec_scores, enc_boxes, enc_scores, dn_meta), or the
        evaluation output (y, that tuple). Returns boxes (ndl + 1, bs, nq, 4) and scores
        (ndl + 1, bs, nq, nc) with the encoder's top-k proposals as layer 0, the denoising queries'
        dn_boxes / dn_scores (ndl, bs, num_dn, ...) or None, and dn_meta.
        """
        train_out = preds if len(preds) == 5 else preds[1]
        boxes, scores, enc_boxes, enc_scores, dn_meta = train_out
        named = {"dn_boxes": None, "dn_scores": None, "dn_meta": dn_meta}
        if dn_meta is not None:
            named["dn_boxes"], boxes = _split_denoising(boxes, dn_meta["dn_num_split"])
            named["dn_scores"], scores = _split_denoising(scores, dn_meta["dn_num_split"])
        named["boxes"] = torch.cat([enc_boxes[None], boxes])  # (ndl + 1, bs, nq, 4)
        named["scores"] = torch.cat([enc_scores[None], scores])  # (ndl + 1, bs, nq, nc)
        return named

    @staticmethod
    def _inference_tensor(train_out: tuple) -> torch.Tensor:
        """(bs, nq, 4 + nc) from the training-layout tuple: the evaluated layer's boxes, then its sigmoid scores."""
        boxes, logits = train_out[0][-1], train_out[1][-1]
        return torch.cat([boxes, logits.sigmoid()], dim=-1)

    # -------------------------------------------------------------------------------- forward
    def forward(
        self,
        x: list[torch.Tensor],
        batch: dict | None = None,
    ) -> tuple | torch.Tensor:
        """x: nl feature maps (bs, ch[i], H_i, W_i). batch: the training batch (used for denoising queries)."""
        feats, shapes = self._get_encoder_input(x)
        dn_embed, dn_bbox, attn_mask, dn_meta = self._denoising_queries(batch)
        embed, refer_bbox, enc_bboxes, enc_scores = self._get_decoder_input(feats, shapes, dn_embed, dn_bbox)
        dec_bboxes, dec_scores = self.decoder(
            embed,
            refer_bbox,
            feats,
            shapes,
            self.dec_bbox_head,
            self.dec_score_head,
            self.query_pos_head,
            attn_mask=attn_mask,
        )
        train_out = (dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta)
        if self.training:
            return train_out
        y = self._inference_tensor(train_out)
        return y if self.export else (y, train_out)

    def _denoising_queries(self, batch: dict | None) -> tuple:
        """(dn_embed, dn_bbox, attn_mask, dn_meta) from the batch's ground truth, four Nones outside training."""
        if not (self.training and batch is not None and self.num_denoising > 0):
            return None, None, None, None
        # imported on use: the training helpers need scipy, which inference does not
        from ultralytics.models.utils.ops import get_cdn_group

        return get_cdn_group(
            batch,
            self.nc,
            self.num_queries,
            self.denoising_class_embed.weight,
            num_dn=self.num_denoising,
            cls_noise_ratio=self.label_noise_ratio,
            box_noise_scale=self.box_noise_scale,
            training=self.training,
        )

    def _get_encoder_input(self, x: list[torch.Tensor]) -> tuple[torch.Tensor, list[list[int]]]:
        """Project and flatten the levels: returns feats (bs, sum(H_i * W_i), hd) and shapes [[H_i, W_i], ...]."""
        if len(x) != self.nl:
            raise ValueError(
                f"RTDETRDecoder: expected {self.nl} feature maps (one per entry of ch), got {len(x)}; "
                "the yaml row's `from` list and the decoder's ch must have the same length"
            )
        projected = [proj(level) for proj, level in zip(self.input_proj, x)]
        shapes = [list(p.shape[2:]) for p in projected]
        tokens = torch.cat([p.flatten(2).transpose(1, 2) for p in projected], dim=1)  # (bs, sum of H*W, hd)
        return tokens, shapes

    # -------------------------------------------------------------------------------- anchors
    def _generate_anchors(
        self,
        shapes: list[list[int]],
        grid_size: float = 0.05,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        eps: float = 1e-2,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One anchor per feature-map cell: centre of the cell, size grid_size * 2**level (normalised).

        Returns:
            anchors (1, num_anchors, 4) in logit space (inf where invalid) and valid_mask (1, num_anchors, 1),
            True where every coordinate lies in (eps, 1 - eps).
        """
        per_level = []
        for level, (h, w) in enumerate(shapes):
            cy = (torch.arange(h, dtype=dtype, device=device) + 0.5) / h
            cx = (torch.arange(w, dtype=dtype, device=device) + 0.5) / w
            cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # (h, w) each, row-major like the tokens
            side = torch.full_like(cx, grid_size * 2.0**level)
            per_level.append(torch.stack([cx, cy, side, side], dim=-1).reshape(1, h * w, 4))
        boxes = torch.cat(per_level, dim=1)  # (1, num_anchors, 4)
        inside = ((boxes > eps) & (boxes < 1 - eps)).all(dim=-1, keepdim=True)
        logits = torch.log(boxes / (1 - boxes))
        return logits.masked_fill(inside.logical_not(), float("inf")), inside

    def _anchors_for(self, shapes: list[list[int]], like: torch.Tensor) -> None:
        """Build (or reuse) the cached anchors and valid mask for these shapes on like's dtype and device."""
        cached = self.anchors
        stale = (
            self.dynamic
            or self.shapes != shapes
            or cached.device != like.device
            or cached.dtype != like.dtype
            # tensors made under inference_mode cannot take part in autograd later (predict, then train)
            or (cached.is_inference() and not torch.is_inference_mode_enabled())
        )
        if stale:
            self.anchors, self.valid_mask = self._generate_anchors(shapes, dtype=like.dtype, device=like.device)
            self.shapes = shapes

    # -------------------------------------------------------------------------------- query selection
    def _top_proposals(self, logits: torch.Tensor) -> torch.Tensor:
        """(bs, nq) indices of the best-scoring anchors, best first, cycling when there are fewer than nq."""
        best_class = logits.max(dim=-1).values  # (bs, num_anchors)
        k = min(self.num_queries, best_class.shape[1])
        picked = best_class.topk(k, dim=1).indices
        if k < self.num_queries:
            picked = picked[:, torch.arange(self.num_queries, device=picked.device) % k]
        return picked

    def _get_decoder_input(
        self,
        feats: torch.Tensor,
        shapes: list[list[int]],
        dn_embed: torch.Tensor | None = None,
        dn_bbox: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Select the nq best encoder proposals as initial queries.

        Returns:
            embeddings (bs, num_dn + nq, hd), refer_bbox (bs, num_dn + nq, 4) as logits, enc_bboxes (bs, nq, 4)
            sigmoid cxcywh and enc_scores (bs, nq, nc) logits.
        """
        self._anchors_for(shapes, float32_like(feats))  # float32 anchors under autocast, feats' dtype otherwise
        memory = self.enc_output(self.valid_mask * feats)  # (bs, num_anchors, hd)
        # the scores that pick the queries, and the proposals' boxes, stay float32 under autocast
        logits = run_in_float32(self.enc_score_head, memory)  # (bs, num_anchors, nc)

        picked = self._top_proposals(logits)  # (bs, nq)
        # the batch size is read from a shape, not len(), so that traced exports keep it dynamic
        bs = feats.shape[0]
        rows = torch.arange(bs, device=picked.device).unsqueeze(1)  # (bs, 1)
        chosen = memory[rows, picked]  # (bs, nq, hd)
        # a proposal is its anchor moved by the predicted delta, both in logit space
        proposal = run_in_float32(self.enc_bbox_head, chosen) + self.anchors[0, picked]  # (bs, nq, 4)

        queries = self.tgt_embed.weight.expand(bs, -1, -1) if self.learnt_init_query else chosen
        ref = proposal
        if self.training:
            # the decoder starts from the proposals without back-propagating into their selection
            ref = ref.detach()
            queries = queries if self.learnt_init_query else queries.detach()
        if dn_bbox is not None:
            ref = torch.cat([dn_bbox, ref], dim=1)
        if dn_embed is not None:
            queries = torch.cat([dn_embed, queries], dim=1)
        return queries, ref, proposal.sigmoid(), logits[rows, picked]

    # -------------------------------------------------------------------------------- initialisation
    def _reset_parameters(self) -> None:
        """Class heads get a prior-probability bias, last box layers start at zero (proposal = anchor), the
        remaining projections are Xavier-initialised."""
        # the 1% prior-probability logit, scaled by nc / 80 as in the released weights
        prior_logit = bias_init_with_prob(0.01) / 80 * self.nc
        for score_head in (self.enc_score_head, *self.dec_score_head):
            nn.init.constant_(score_head.bias, prior_logit)
        for box_head in (self.enc_bbox_head, *self.dec_bbox_head):
            nn.init.zeros_(box_head.layers[-1].weight)
            nn.init.zeros_(box_head.layers[-1].bias)

        # Random draws, in a fixed order: the token projection, the learnt queries, the position MLP,
        # then the level projections.
        linear_init(self.enc_output[0])
        xavier = [self.enc_output[0].weight]
        if self.learnt_init_query:
            xavier.append(self.tgt_embed.weight)
        xavier.extend(layer.weight for layer in self.query_pos_head.layers)
        xavier.extend(proj[0].weight for proj in self.input_proj)
        for weight in xavier:
            nn.init.xavier_uniform_(weight)
