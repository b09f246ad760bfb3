"""Transformer building blocks of RT-DETR: the AIFI encoder layer, MLPs, multi-scale deformable attention and the
deformable decoder. Attribute names and creation order follow Ultralytics 8.3.50 so state_dicts and pickled
checkpoints are interchangeable."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import _get_clones, inverse_sigmoid, multi_scale_deformable_attn_pytorch
from .yaml_args import YamlArgs

__all__ = (
    "TransformerEncoderLayer",
    "AIFI",
    "TransformerLayer",
    "TransformerBlock",
    "MLPBlock",
    "MLP",
    "LayerNorm2d",
    "MSDeformAttn",
    "DeformableTransformerDecoderLayer",
    "DeformableTransformerDecoder",
)

# An activation may be given as a class (instantiated here) or as a ready instance (used as is, as upstream does).
Activation = type[nn.Module] | nn.Module


def _make_act(act: Activation) -> nn.Module:
    """Instantiate `act` when it is a class; an instance is returned unchanged."""
    return act() if isinstance(act, type) else act


def _with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    """Add a positional embedding when one is given."""
    return tensor if pos is None else tensor + pos


class TransformerEncoderLayer(nn.Module):
    """Standard transformer encoder layer (multi-head self-attention + feed-forward) on (B, N, C) tokens.

    `normalize_before` selects pre-norm; the default post-norm is what RT-DETR uses.
    """

    yaml_args = YamlArgs("same")

    def __init__(
        self,
        c1: int,
        cm: int = 2048,
        num_heads: int = 8,
        dropout: float = 0.0,
        act: Activation = nn.GELU,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        if c1 % num_heads:
            raise ValueError(
                f"{type(self).__name__}: channels c1={c1} must be divisible by num_heads={num_heads}"
            )
        self.ma = nn.MultiheadAttention(c1, num_heads, dropout=dropout, batch_first=True)
        self.fc1 = nn.Linear(c1, cm)
        self.fc2 = nn.Linear(cm, c1)
        self.norm1 = nn.LayerNorm(c1)
        self.norm2 = nn.LayerNorm(c1)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.act = _make_act(act)
        self.normalize_before = normalize_before

    @staticmethod
    def with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Add a positional embedding when one is given."""
        return _with_pos_embed(tensor, pos)

    def forward_post(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Post-norm: x = norm(x + attn(x)); x = norm(x + ffn(x)). src is (B, N, C)."""
        q = k = _with_pos_embed(src, pos)
        attn = self.ma(q, k, value=src, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)[0]
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.fc2(self.dropout(self.act(self.fc1(src))))
        return self.norm2(src + self.dropout2(ffn))

    def forward_pre(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pre-norm: x = x + attn(norm(x)); x = x + ffn(norm(x)). src is (B, N, C)."""
        normed = self.norm1(src)
        q = k = _with_pos_embed(normed, pos)
        attn = self.ma(q, k, value=normed, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)[0]
        src = src + self.dropout1(attn)
        ffn = self.fc2(self.dropout(self.act(self.fc1(self.norm2(src)))))
        return src + self.dropout2(ffn)

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        if self.normalize_before:
            return self.forward_pre(src, src_mask, src_key_padding_mask, pos)
        return self.forward_post(src, src_mask, src_key_padding_mask, pos)


class AIFI(TransformerEncoderLayer):
    """Attention-based intra-scale feature interaction: one encoder layer over a (B, C, H, W) map, with a fixed 2D
    sin-cos position embedding. Output has the input's shape."""

    def __init__(
        self,
        c1: int,
        cm: int = 2048,
        num_heads: int = 8,
        dropout: float = 0,
        act: Activation = nn.GELU,
        normalize_before: bool = False,
    ) -> None:
        if c1 % 4:
            raise ValueError(f"AIFI: channels c1={c1} must be divisible by 4 for the 2D sin-cos position embedding")
        super().__init__(c1, cm, num_heads, dropout, act, normalize_before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        c, h, w = x.shape[1:]
        pos_embed = self.build_2d_sincos_position_embedding(w, h, c).to(device=x.device, dtype=x.dtype)
        tokens = x.flatten(2).permute(0, 2, 1)  # (B, H*W, C)
        tokens = super().forward(tokens, pos=pos_embed)
        return tokens.permute(0, 2, 1).reshape(-1, c, h, w).contiguous()

    @staticmethod
    def build_2d_sincos_position_embedding(
        w: int,
        h: int,
        embed_dim: int = 256,
        temperature: float = 10000.0,
    ) -> torch.Tensor:
        """(1, w*h, embed_dim) embedding: [sin(x*omega), cos(x*omega), sin(y*omega), cos(y*omega)], each a quarter.

        The grid is enumerated x-major (row index = x * h + y) while the tokens it is added to are y-major; this
        matches upstream exactly (trained weights depend on it), and the two agree for square maps up to a
        transpose.
        """
        if embed_dim % 4:
            raise ValueError(f"2D sin-cos position embedding: embed_dim={embed_dim} must be divisible by 4")
        grid_w, grid_h = torch.meshgrid(
            torch.arange(w, dtype=torch.float32),
            torch.arange(h, dtype=torch.float32),
            indexing="ij",
        )
        pos_dim = embed_dim // 4
        omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
        out_w = grid_w.flatten()[:, None] * omega[None]
        out_h = grid_h.flatten()[:, None] * omega[None]
        return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


class TransformerLayer(nn.Module):
    """ViT-style layer without LayerNorm: x + MHA(q(x), k(x), v(x)), then x + fc2(fc1(x)). Input (N, B, C)."""

    def __init__(self, c: int, num_heads: int) -> None:
        super().__init__()
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(c, c, bias=False)
        self.v = nn.Linear(c, c, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
        self.fc1 = nn.Linear(c, c, bias=False)
        self.fc2 = nn.Linear(c, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, C) -> (N, B, C)."""
        x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
        return self.fc2(self.fc1(x)) + x


class TransformerBlock(nn.Module):
    """Optional Conv to c2 channels, a learnt linear position embedding, then `num_layers` TransformerLayers.
    (B, c1, H, W) -> (B, c2, H, W)."""

    def __init__(self, c1: int, c2: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        # Imported here so this file stays importable on its own (conv.py is a separate module).
        from .conv import Conv

        self.conv = Conv(c1, c2) if c1 != c2 else None
        self.linear = nn.Linear(c2, c2)
        self.tr = nn.Sequential(*(TransformerLayer(c2, num_heads) for _ in range(num_layers)))
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c1, H, W) -> (B, c2, H, W)."""
        if self.conv is not None:
            x = self.conv(x)
        b, _, h, w = x.shape
        tokens = x.flatten(2).permute(2, 0, 1)  # (H*W, B, c2)
        return self.tr(tokens + self.linear(tokens)).permute(1, 2, 0).reshape(b, self.c2, h, w)


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them: embedding_dim -> mlp_dim -> embedding_dim."""

    def __init__(
        self,
        embedding_dim: int,
        mlp_dim: int,
        act: Activation = nn.GELU,
    ) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., embedding_dim) -> (..., embedding_dim)."""
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """`num_layers` linear layers input_dim -> hidden_dim ... -> output_dim with `act` between them (not after the
    last); optional sigmoid on the output."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        act: Activation = nn.ReLU,
        sigmoid: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLP: num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims_in, dims_out))
        self.sigmoid = sigmoid
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        last = self.num_layers - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else self.act(layer(x))
        # `sigmoid` may be missing on modules unpickled from checkpoints written before it existed
        return x.sigmoid() if getattr(self, "sigmoid", False) else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor, with per-channel affine weight and bias."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable-DETR): every query reads `n_points` bilinear samples per head
    and level around its reference point and mixes them with softmax weights predicted from the query."""

    def __init__(
        self,
        d_model: int = 256,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MSDeformAttn: d_model={d_model} must be divisible by n_heads={n_heads}")
        # Kept for checkpoint compatibility with the CUDA-kernel implementations; unused by the PyTorch path.
        self.im2col_step = 64
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points

        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Offsets start as a fixed star: head h points in direction 2*pi*h/n_heads (scaled so the larger
        coordinate is 1), point p at distance p+1; attention starts uniform; projections are Xavier."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([thetas.cos(), thetas.sin()], -1)  # (n_heads, 2)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        grid = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        refer_bbox: torch.Tensor,
        value: torch.Tensor,
        value_shapes: list,
        value_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from queries to the flattened multi-level feature maps.

        Args:
            query: (bs, nq, d_model).
            refer_bbox: (bs, nq, n_levels or 1, 2) reference points (x, y) or (bs, nq, n_levels or 1, 4) boxes
                (cx, cy, w, h), normalised to [0, 1]. With boxes, offsets are scaled by half the box size / n_points.
            value: (bs, num_keys, d_model), all levels flattened and concatenated.
            value_shapes: n_levels (H, W) pairs; sum of H * W must be num_keys.
            value_mask: (bs, num_keys), True where a key is padding (its value is zeroed).

        Returns:
            (bs, nq, d_model).
        """
        bs, len_q = query.shape[:2]
        len_v = value.shape[1]
        expected = sum(int(h) * int(w) for h, w in value_shapes)
        if expected != len_v:
            raise ValueError(
                f"MSDeformAttn: value has {len_v} keys but value_shapes {list(value_shapes)} describe {expected}"
            )

        value = self.value_proj(value)
        if value_mask is not None:
            value = value.masked_fill(value_mask[..., None], 0.0)
        value = value.view(bs, len_v, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(bs, len_q, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(bs, len_q, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(bs, len_q, self.n_heads, self.n_levels, self.n_points)

        ref_dims = refer_bbox.shape[-1]
        if ref_dims == 2:
            # offsets are in pixels of each level: divide by (W, H)
            normalizer = torch.as_tensor(value_shapes, dtype=query.dtype, device=query.device).flip(-1)
            locations = refer_bbox[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif ref_dims == 4:
            scale = refer_bbox[:, :, None, :, None, 2:] * 0.5 / self.n_points
            locations = refer_bbox[:, :, None, :, None, :2] + offsets * scale
        else:
            raise ValueError(
                f"MSDeformAttn: refer_bbox's last dimension must be 2 (points) or 4 (boxes), got {ref_dims}"
            )
        output = multi_scale_deformable_attn_pytorch(value, value_shapes, locations, weights)
        return self.output_proj(output)


class DeformableTransformerDecoderLayer(nn.Module):
    """Decoder layer: self-attention among queries, deformable cross-attention into the image features, FFN;
    each followed by residual + LayerNorm (post-norm)."""

    def __init__(
        self,
        d_model: int = 256,
        n_heads: int = 8,
        d_ffn: int = 1024,
        dropout: float = 0.0,
        act: Activation = nn.ReLU,
        n_levels: int = 4,
        n_points: int = 4,
    ) -> None:
        super().__init__()
        # self attention (sequence-first, as upstream; forward transposes)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        # cross attention
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        # feed-forward
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.act = _make_act(act)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    @staticmethod
    def with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        """Add a positional embedding when one is given."""
        return _with_pos_embed(tensor, pos)

    def forward_ffn(self, tgt: torch.Tensor) -> torch.Tensor:
        """norm3(tgt + linear2(act(linear1(tgt))))."""
        tgt2 = self.linear2(self.dropout3(self.act(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(tgt2))

    def forward(
        self,
        embed: torch.Tensor,
        refer_bbox: torch.Tensor,
        feats: torch.Tensor,
        shapes: list,
        padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refine the query embeddings.

        Args:
            embed: (bs, nq, d_model) query content.
            refer_bbox: (bs, nq, 4) reference boxes, normalised cxcywh.
            feats: (bs, num_keys, d_model) flattened multi-level features.
            shapes: per level (H, W).
            padding_mask: (bs, num_keys), True for padded keys.
            attn_mask: (nq, nq) self-attention mask, True where attention is blocked (denoising groups).
            query_pos: (bs, nq, d_model) positional embedding of the queries.

        Returns:
            (bs, nq, d_model).
        """
        q = k = _with_pos_embed(embed, query_pos)
        # The attention map is not used: without it PyTorch takes its fused scaled-dot-product kernel
        # (same result up to float rounding, about a third faster forward + backward on CPU).
        tgt = self.self_attn(
            q.transpose(0, 1),
            k.transpose(0, 1),
            embed.transpose(0, 1),
            attn_mask=attn_mask,
            need_weights=False,
        )[0].transpose(0, 1)
        embed = self.norm1(embed + self.dropout1(tgt))

        tgt = self.cross_attn(
            _with_pos_embed(embed, query_pos),
            refer_bbox.unsqueeze(2),
            feats,
            shapes,
            padding_mask,
        )
        embed = self.norm2(embed + self.dropout2(tgt))
        return self.forward_ffn(embed)


class DeformableTransformerDecoder(nn.Module):
    """Stack of `num_layers` copies of `decoder_layer` with iterative box refinement.

    Each layer predicts a box delta in logit space on top of the previous reference box. In training every
    layer's boxes and logits are returned (for the auxiliary losses); in eval only layer `eval_idx`'s.
    """

    def __init__(
        self,
        hidden_dim: int,
        decoder_layer: nn.Module,
        num_layers: int,
        eval_idx: int = -1,
    ) -> None:
        super().__init__()
        if not -num_layers <= eval_idx < num_layers:
            raise ValueError(
                f"DeformableTransformerDecoder: eval_idx={eval_idx} is outside the {num_layers} decoder layers "
                f"(accepted: {-num_layers} .. {num_layers - 1})"
            )
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx

    def forward(
        self,
        embed: torch.Tensor,
        refer_bbox: torch.Tensor,
        feats: torch.Tensor,
        shapes: list,
        bbox_head: nn.ModuleList,
        score_head: nn.ModuleList,
        pos_mlp: nn.Module,
        attn_mask: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the decoder layers.

        Args:
            embed: (bs, nq, hd) initial query embeddings.
            refer_bbox: (bs, nq, 4) initial reference boxes as logits (sigmoid gives normalised cxcywh).
            feats: (bs, num_keys, hd) flattened multi-level features; shapes their per-level (H, W).
            bbox_head, score_head: one box MLP (hd -> 4) and one class Linear (hd -> nc) per layer.
            pos_mlp: maps a (bs, nq, 4) box to its (bs, nq, hd) query position embedding.
            attn_mask: (nq, nq) self-attention mask; padding_mask: (bs, num_keys).

        Returns:
            boxes (L, bs, nq, 4) sigmoid cxcywh and logits (L, bs, nq, nc), with L = num_layers in training
            and L = 1 (layer eval_idx) in eval.
        """
        output = embed
        dec_bboxes = []
        dec_cls = []
        last_refined_bbox = None
        refer_bbox = refer_bbox.sigmoid()
        for i, layer in enumerate(self.layers):
            output = layer(output, refer_bbox, feats, shapes, padding_mask, attn_mask, pos_mlp(refer_bbox))
            bbox = bbox_head[i](output)
            refined_bbox = torch.sigmoid(bbox + inverse_sigmoid(refer_bbox))

            if self.training:
                dec_cls.append(score_head[i](output))
                # From layer 1 on, the box that is supervised is built on the previous layer's refined box
                # *with* gradient, while the next layer's reference is detached (RT-DETR's look-forward-twice).
                if i == 0:
                    dec_bboxes.append(refined_bbox)
                else:
                    dec_bboxes.append(torch.sigmoid(bbox + inverse_sigmoid(last_refined_bbox)))
            elif i == self.eval_idx:
                dec_cls.append(score_head[i](output))
                dec_bboxes.append(refined_bbox)
                break

            last_refined_bbox = refined_bbox
            refer_bbox = refined_bbox.detach() if self.training else refined_bbox

        return torch.stack(dec_bboxes), torch.stack(dec_cls)
