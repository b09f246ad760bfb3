"""RT-DETR's detection head: input projection, query selection from encoder proposals, and the deformable
transformer decoder with per-layer box/class heads (Ultralytics 8.3.50 layout)."""

from __future__ import annotations

import numbers

import torch
import torch.nn as nn

from .transformer import MLP, Activation, DeformableTransformerDecoder, DeformableTransformerDecoderLayer
from .utils import bias_init_with_prob, linear_init
from .yaml_args import YamlArgs

__all__ = ("RTDETRDecoder",)


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
    not depend on the image size. With at least nq anchors the selection is upstream's top-k.
    """

    export = False  # set by the exporter: forward returns y only
    shapes = []  # feature-map shapes the cached anchors were built for (per instance once set)
    anchors = torch.empty(0)  # cached (1, num_anchors, 4) logit-space anchors
    dynamic = False  # rebuild anchors on every call (dynamic-shape export)

    yaml_args = YamlArgs("decoder")

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
        if not isinstance(nc, numbers.Integral) or isinstance(nc, bool) or nc < 1:
            raise ValueError(f"RTDETRDecoder: nc (number of classes) must be a positive integer, got {nc!r}")
        if len(ch) < 1:
            raise ValueError("RTDETRDecoder: ch must list the channels of at least one input feature map")
        if nq < 1:
            raise ValueError(f"RTDETRDecoder: nq (number of queries) must be >= 1, got {nq}")
        self.hidden_dim = hd
        self.nhead = nh
        self.nl = len(ch)
        self.nc = nc
        self.num_queries = nq
        self.num_decoder_layers = ndl

        # project every level to hd channels (Conv2d without bias + BN, as in the released weights)
        self.input_proj = nn.ModuleList(nn.Sequential(nn.Conv2d(x, hd, 1, bias=False), nn.BatchNorm2d(hd)) for x in ch)

        decoder_layer = DeformableTransformerDecoderLayer(hd, nh, d_ffn, dropout, act, self.nl, ndp)
        self.decoder = DeformableTransformerDecoder(hd, decoder_layer, ndl, eval_idx)

        # denoising (training only)
        self.denoising_class_embed = nn.Embedding(nc, hd)
        self.num_denoising = nd
        self.label_noise_ratio = label_noise_ratio
        self.box_noise_scale = box_noise_scale

        # decoder queries
        self.learnt_init_query = learnt_init_query
        if learnt_init_query:
            self.tgt_embed = nn.Embedding(nq, hd)
        self.query_pos_head = MLP(4, 2 * hd, hd, num_layers=2)

        # encoder proposals
        self.enc_output = nn.Sequential(nn.Linear(hd, hd), nn.LayerNorm(hd))
        self.enc_score_head = nn.Linear(hd, nc)
        self.enc_bbox_head = MLP(hd, hd, 4, num_layers=3)

        # per decoder layer heads
        self.dec_score_head = nn.ModuleList([nn.Linear(hd, nc) for _ in range(ndl)])
        self.dec_bbox_head = nn.ModuleList([MLP(hd, hd, 4, num_layers=3) for _ in range(ndl)])

        self._reset_parameters()

    @staticmethod
    def loss_inputs(preds) -> dict:
        """Name the parts of this decoder's output for the loss.

        preds: the training output (dec_boxes, dec_scores, enc_boxes, enc_scores, dn_meta), or the
        evaluation output (y, that tuple). Returns boxes (ndl + 1, bs, nq, 4) and scores
        (ndl + 1, bs, nq, nc) with the encoder's top-k proposals as layer 0, the denoising queries'
        dn_boxes / dn_scores (ndl, bs, num_dn, ...) or None, and dn_meta.
        """
        raw = preds if len(preds) == 5 else preds[1]
        dec_boxes, dec_scores, enc_boxes, enc_scores, dn_meta = raw
        dn_boxes = dn_scores = None
        if dn_meta is not None:
            # Denoising queries sit in front of the matching queries along the query axis.
            dn_boxes, dec_boxes = torch.split(dec_boxes, dn_meta["dn_num_split"], dim=2)
            dn_scores, dec_scores = torch.split(dec_scores, dn_meta["dn_num_split"], dim=2)
        return {
            "boxes": torch.cat([enc_boxes.unsqueeze(0), dec_boxes]),  # (ndl + 1, bs, nq, 4)
            "scores": torch.cat([enc_scores.unsqueeze(0), dec_scores]),  # (ndl + 1, bs, nq, nc)
            "dn_boxes": dn_boxes,
            "dn_scores": dn_scores,
            "dn_meta": dn_meta,
        }

    def forward(
        self,
        x: list[torch.Tensor],
        batch: dict | None = None,
    ) -> tuple | torch.Tensor:
        """x: nl feature maps (bs, ch[i], H_i, W_i). batch: the training batch (used for denoising queries)."""
        feats, shapes = self._get_encoder_input(x)

        dn_embed = dn_bbox = attn_mask = dn_meta = None
        if self.training and batch is not None and self.num_denoising > 0:
            # imported on use: the loss utilities depend on scipy etc. and are only needed for training
            from ultralytics.models.utils.ops import get_cdn_group

            dn_embed, dn_bbox, attn_mask, dn_meta = get_cdn_group(
                batch,
                self.nc,
                self.num_queries,
                self.denoising_class_embed.weight,
                self.num_denoising,
                self.label_noise_ratio,
                self.box_noise_scale,
                self.training,
            )

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
        x = dec_bboxes, dec_scores, enc_bboxes, enc_scores, dn_meta
        if self.training:
            return x
        y = torch.cat((dec_bboxes.squeeze(0), dec_scores.squeeze(0).sigmoid()), -1)  # (bs, nq, 4 + nc)
        return y if self.export else (y, x)

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
        anchors = []
        for level, (h, w) in enumerate(shapes):
            grid_y, grid_x = torch.meshgrid(
                torch.arange(h, dtype=dtype, device=device),
                torch.arange(w, dtype=dtype, device=device),
                indexing="ij",
            )
            size = torch.tensor([w, h], dtype=dtype, device=device)
            centres = (torch.stack([grid_x, grid_y], -1) + 0.5) / size  # (h, w, 2)
            wh = torch.full_like(centres, grid_size * 2.0**level)
            anchors.append(torch.cat([centres, wh], -1).view(1, h * w, 4))
        anchors = torch.cat(anchors, 1)
        valid_mask = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
        anchors = torch.log(anchors / (1 - anchors))
        anchors = anchors.masked_fill(~valid_mask, float("inf"))
        return anchors, valid_mask

    def _get_encoder_input(self, x: list[torch.Tensor]) -> tuple[torch.Tensor, list[list[int]]]:
        """Project and flatten the levels: returns feats (bs, sum(H_i * W_i), hd) and shapes [[H_i, W_i], ...]."""
        if len(x) != self.nl:
            raise ValueError(
                f"RTDETRDecoder: expected {self.nl} feature maps (one per entry of ch), got {len(x)}; "
                "the yaml row's `from` list and the decoder's ch must have the same length"
            )
        feats = []
        shapes = []
        for proj, feat in zip(self.input_proj, x):
            feat = proj(feat)
            h, w = feat.shape[2:]
            feats.append(feat.flatten(2).permute(0, 2, 1))  # (bs, h*w, hd)
            shapes.append([h, w])
        return torch.cat(feats, 1), shapes

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
        bs = feats.shape[0]
        self._anchors_for(shapes, feats)
        features = self.enc_output(self.valid_mask * feats)  # (bs, num_anchors, hd)
        enc_outputs_scores = self.enc_score_head(features)  # (bs, num_anchors, nc)

        num_anchors = features.shape[1]
        k = min(self.num_queries, num_anchors)
        topk_ind = torch.topk(enc_outputs_scores.max(-1).values, k, dim=1).indices  # (bs, k), best first
        if k < self.num_queries:
            # too few anchors: repeat them best-first until every query slot is filled
            cycle = torch.arange(self.num_queries, device=topk_ind.device) % k
            topk_ind = topk_ind[:, cycle]
        topk_ind = topk_ind.view(-1)  # (bs * nq,)
        batch_ind = torch.arange(bs, dtype=topk_ind.dtype, device=topk_ind.device).repeat_interleave(self.num_queries)

        top_k_features = features[batch_ind, topk_ind].view(bs, self.num_queries, -1)  # (bs, nq, hd)
        top_k_anchors = self.anchors[:, topk_ind].view(bs, self.num_queries, -1)  # (bs, nq, 4)

        # proposal = static anchor + predicted offset, both in logit space
        refer_bbox = self.enc_bbox_head(top_k_features) + top_k_anchors
        enc_bboxes = refer_bbox.sigmoid()
        if dn_bbox is not None:
            refer_bbox = torch.cat([dn_bbox, refer_bbox], 1)
        enc_scores = enc_outputs_scores[batch_ind, topk_ind].view(bs, self.num_queries, -1)

        if self.learnt_init_query:
            embeddings = self.tgt_embed.weight.unsqueeze(0).repeat(bs, 1, 1)
        else:
            embeddings = top_k_features
        if self.training:
            # the decoder starts from the proposals but does not back-propagate into their selection
            refer_bbox = refer_bbox.detach()
            if not self.learnt_init_query:
                embeddings = embeddings.detach()
        if dn_embed is not None:
            embeddings = torch.cat([dn_embed, embeddings], 1)
        return embeddings, refer_bbox, enc_bboxes, enc_scores

    def _reset_parameters(self) -> None:
        """Class heads get a prior-probability bias, last box layers start at zero (proposal = anchor), the
        remaining projections are Xavier-initialised."""
        # upstream scales the 1% prior-probability logit by nc / 80
        bias_cls = bias_init_with_prob(0.01) / 80 * self.nc
        nn.init.constant_(self.enc_score_head.bias, bias_cls)
        nn.init.constant_(self.enc_bbox_head.layers[-1].weight, 0.0)
        nn.init.constant_(self.enc_bbox_head.layers[-1].bias, 0.0)
        for cls_head, box_head in zip(self.dec_score_head, self.dec_bbox_head):
            nn.init.constant_(cls_head.bias, bias_cls)
            nn.init.constant_(box_head.layers[-1].weight, 0.0)
            nn.init.constant_(box_head.layers[-1].bias, 0.0)

        linear_init(self.enc_output[0])
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        if self.learnt_init_query:
            nn.init.xavier_uniform_(self.tgt_embed.weight)
        nn.init.xavier_uniform_(self.query_pos_head.layers[0].weight)
        nn.init.xavier_uniform_(self.query_pos_head.layers[1].weight)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
