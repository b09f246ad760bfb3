"""Attention pieces of RT-DETR.

Three families live here:

* token encoders over a flattened feature map: `TransformerEncoderLayer` and its 2D wrapper `AIFI`
  (plus the ViT-style `TransformerLayer` / `TransformerBlock`);
* small dense helpers: `MLP`, `MLPBlock`, `LayerNorm2d`;
* the deformable decoder: `MSDeformAttn`, one `DeformableTransformerDecoderLayer`, and the stack
  `DeformableTransformerDecoder` that refines boxes layer after layer.

Submodule names and the order in which they are created are fixed by the released checkpoints
(state_dict keys) and by the seed-pinned initialisation; every constructor below creates its layers
in exactly that order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn as nn

from ultralytics.utils.precision import float32_island, run_in_float32

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

# An activation may be given as a class (instantiated here) or as a ready instance (used as is).
Activation = type[nn.Module] | nn.Module


def _make_act(act: Activation) -> nn.Module:
    """Instantiate `act` when it is a class; an instance is returned unchanged."""
    return act() if isinstance(act, type) else act


def _with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    """`tensor + pos`, or `tensor` itself when there is no positional embedding."""
    if pos is None:
        return tensor
    return tensor + pos


def _norms(width: int, count: int) -> list[nn.LayerNorm]:
    """`count` LayerNorms over `width` features, created in order."""
    return [nn.LayerNorm(width) for _ in range(count)]


def _dropouts(p: float, count: int) -> list[nn.Dropout]:
    """`count` Dropout modules of rate `p`."""
    return [nn.Dropout(p) for _ in range(count)]


# ------------------------------------------------------------------------------------------------
# token encoders
# ------------------------------------------------------------------------------------------------
class TransformerEncoderLayer(nn.Module):
    """Self-attention + feed-forward over (B, N, C) tokens, post-norm by default.

    `normalize_before=True` switches to pre-norm (norm inside each residual branch).
    """

    yaml_args = YamlArgs("same", example="[-1, 1, {name}, [1024, 8]]")

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
        self._check_width(c1, num_heads)
        # creation order = checkpoint order: attention, the two FFN linears, norms, dropouts, activation
        self.ma = nn.MultiheadAttention(embed_dim=c1, num_heads=num_heads, dropout=dropout, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(c1, cm), nn.Linear(cm, c1)
        self.norm1, self.norm2 = _norms(c1, 2)
        self.dropout, self.dropout1, self.dropout2 = _dropouts(dropout, 3)
        self.act = _make_act(act)
        self.normalize_before = normalize_before

    @classmethod
    def _check_width(cls, c1: int, num_heads: int) -> None:
        """Reject channel counts the attention cannot split; subclasses add their own conditions."""
        if c1 % num_heads:
            raise ValueError(f"{cls.__name__}: channels c1={c1} must be divisible by num_heads={num_heads}")

    @staticmethod
    def with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """`tensor + pos` when a positional embedding is given, else `tensor`."""
        return _with_pos_embed(tensor, pos)

    def _attend(
        self,
        x: torch.Tensor,
        pos: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Residual branch of the self-attention: position goes into queries and keys, not values."""
        qk = _with_pos_embed(x, pos)
        attended, _ = self.ma(qk, qk, value=x, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
        return self.dropout1(attended)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch of the FFN: fc1 -> act -> dropout -> fc2 -> dropout2."""
        hidden = self.dropout(self.act(self.fc1(x)))
        return self.dropout2(self.fc2(hidden))

    def forward_post(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Post-norm step on (B, N, C): normalise after each residual sum."""
        src = self.norm1(src + self._attend(src, pos, src_mask, src_key_padding_mask))
        return self.norm2(src + self._feed_forward(src))

    def forward_pre(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pre-norm step on (B, N, C): normalise the input of each residual branch."""
        src = src + self._attend(self.norm1(src), pos, src_mask, src_key_padding_mask)
        return src + self._feed_forward(self.norm2(src))

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        step = self.forward_pre if self.normalize_before else self.forward_post
        return step(src, src_mask, src_key_padding_mask, pos)


class AIFI(TransformerEncoderLayer):
    """Attention-based intra-scale feature interaction.

    One `TransformerEncoderLayer` applied to the cells of a (B, C, H, W) map, with a fixed 2D sin-cos
    position embedding added to queries and keys. The output has the input's shape. The constructor
    is the parent's; C must also be divisible by 4 (one quarter of the embedding per sin/cos and axis).
    """

    @classmethod
    def _check_width(cls, c1: int, num_heads: int) -> None:
        if c1 % 4:
            raise ValueError(f"AIFI: channels c1={c1} must be divisible by 4 for the 2D sin-cos position embedding")
        super()._check_width(c1, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        c, h, w = x.shape[1:]
        pos = self.build_2d_sincos_position_embedding(w, h, c).to(device=x.device, dtype=x.dtype)
        cells = x.flatten(2).transpose(1, 2)  # (B, H*W, C), row-major over (y, x)
        cells = super().forward(cells, pos=pos)
        # -1: the batch dimension stays free in traced exports
        return cells.transpose(1, 2).reshape(-1, c, h, w).contiguous()

    @staticmethod
    def build_2d_sincos_position_embedding(
        w: int,
        h: int,
        embed_dim: int = 256,
        temperature: float = 10000.0,
    ) -> torch.Tensor:
        """(1, w*h, embed_dim) embedding: [sin(x*omega), cos(x*omega), sin(y*omega), cos(y*omega)], each a quarter.

        The grid is enumerated x-major (row index = x * h + y) while the tokens it is added to are y-major;
        trained weights depend on this, and the two agree for square maps up to a transpose.
        """
        if embed_dim % 4:
            raise ValueError(f"2D sin-cos position embedding: embed_dim={embed_dim} must be divisible by 4")
        quarter = embed_dim // 4
        omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)  # (quarter,)
        xs, ys = torch.meshgrid(
            torch.arange(w, dtype=torch.float32),
            torch.arange(h, dtype=torch.float32),
            indexing="ij",
        )
        phase_x = xs.reshape(-1, 1) * omega  # (w*h, quarter)
        phase_y = ys.reshape(-1, 1) * omega
        return torch.cat([phase_x.sin(), phase_x.cos(), phase_y.sin(), phase_y.cos()], dim=1).unsqueeze(0)


class TransformerLayer(nn.Module):
    """ViT-style layer without LayerNorm on sequence-first (N, B, C) tokens.

    x + MHA(q(x), k(x), v(x)), then x + fc2(fc1(x)); every projection is bias-free.
    """

    def __init__(self, c: int, num_heads: int) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(c, c, bias=False) for _ in range(3))
        self.ma = nn.MultiheadAttention(embed_dim=c, num_heads=num_heads)
        self.fc1, self.fc2 = (nn.Linear(c, c, bias=False) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, C) -> (N, B, C)."""
        attended, _ = self.ma(self.q(x), self.k(x), self.v(x))
        x = attended + x
        mixed = self.fc2(self.fc1(x))
        return mixed + x


class TransformerBlock(nn.Module):
    """(B, c1, H, W) -> (B, c2, H, W): optional Conv to c2 channels, a learnt linear position term,
    then `num_layers` TransformerLayers over the H*W cells."""

    def __init__(self, c1: int, c2: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        # Imported here so this file stays importable on its own (conv.py is a separate module).
        from .conv import Conv

        self.conv = None if c1 == c2 else Conv(c1, c2)
        self.linear = nn.Linear(c2, c2)
        self.tr = nn.Sequential(*[TransformerLayer(c2, num_heads) for _ in range(num_layers)])
        self.c2 = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c1, H, W) -> (B, c2, H, W)."""
        fmap = x if self.conv is None else self.conv(x)
        b, _, h, w = fmap.shape
        seq = fmap.flatten(2).permute(2, 0, 1)  # (H*W, B, c2)
        seq = self.tr(seq + self.linear(seq))
        return seq.permute(1, 2, 0).reshape(b, self.c2, h, w)


# ------------------------------------------------------------------------------------------------
# dense helpers
# ------------------------------------------------------------------------------------------------
class MLPBlock(nn.Module):
    """Two-layer perceptron embedding_dim -> mlp_dim -> embedding_dim with `act` in between."""

    def __init__(
        self,
        embedding_dim: int,
        mlp_dim: int,
        act: Activation = nn.GELU,
    ) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(embedding_dim, mlp_dim), nn.Linear(mlp_dim, embedding_dim)
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., embedding_dim) -> (..., embedding_dim)."""
        hidden = self.act(self.lin1(x))
        return self.lin2(hidden)


class MLP(nn.Module):
    """Perceptron of `num_layers` linear layers: input_dim -> hidden_dim (x num_layers-1) -> output_dim.

    `act` follows every layer but the last; `sigmoid=True` squashes the output.
    """

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
        widths = [input_dim, *[hidden_dim] * (num_layers - 1), output_dim]
        self.num_layers = num_layers
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(widths[:-1], widths[1:]))
        self.sigmoid = sigmoid
        self.act = _make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        *hidden, last = self.layers
        for layer in hidden:
            x = self.act(layer(x))
        x = last(x)
        # `sigmoid` may be missing on modules unpickled from checkpoints written before it existed
        return x.sigmoid() if getattr(self, "sigmoid", False) else x


class LayerNorm2d(nn.Module):
    """Channel-wise LayerNorm of a (B, C, H, W) map with a per-channel affine transform."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(num_channels)), nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        centred = x - x.mean(1, keepdim=True)
        normed = centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + self.eps)
        return normed * self.weight.view(-1, 1, 1) + self.bias.view(-1, 1, 1)


# ------------------------------------------------------------------------------------------------
# deformable decoder
# ------------------------------------------------------------------------------------------------
def _check_value_shapes(value: torch.Tensor, value_shapes: list) -> None:
    """The (H, W) list must describe exactly the keys of the flattened value tensor."""
    described = sum(int(h) * int(w) for h, w in value_shapes)
    if described != value.shape[1]:
        raise ValueError(
            f"MSDeformAttn: value has {value.shape[1]} keys but value_shapes {list(value_shapes)} describe {described}"
        )


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable-DETR).

    Each query reads `n_points` bilinear samples per head and level around its reference point and
    mixes them with softmax weights predicted from the query itself.
    """

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
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points

        samples = n_heads * n_levels * n_points  # sampling points of one query
        self.sampling_offsets = nn.Linear(d_model, 2 * samples)  # an (x, y) offset per point
        self.attention_weights = nn.Linear(d_model, samples)  # a logit per point
        self.value_proj, self.output_proj = (nn.Linear(d_model, d_model) for _ in range(2))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Offsets start as a fixed star: head h points in direction 2*pi*h/n_heads (scaled so the larger
        coordinate is 1), point p at distance p+1; attention starts uniform; projections are Xavier."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)  # (n_heads, 2)
        directions = directions / directions.abs().max(-1, keepdim=True).values
        grid = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        for param in (self.attention_weights.weight, self.attention_weights.bias):
            nn.init.constant_(param, 0.0)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.constant_(proj.bias, 0.0)

    def _locations(
        self,
        refer_bbox: torch.Tensor,
        offsets: torch.Tensor,
        value_shapes: list,
    ) -> torch.Tensor:
        """Absolute sampling positions (bs, nq, heads, levels, points, 2) in [0, 1] coordinates.

        With point references the offsets are in pixels of each level; with box references they are
        fractions of half the box size, shared out over the points.
        """
        ref = refer_bbox[:, :, None, :, None]  # (bs, nq, 1, levels or 1, 1, 2 or 4)
        coords = refer_bbox.shape[-1]
        if coords == 2:
            level_wh = torch.as_tensor(value_shapes, dtype=offsets.dtype, device=offsets.device).flip(-1)
            return ref + offsets / level_wh[:, None]  # level_wh (levels, 1, 2) broadcasts over the points
        if coords == 4:
            return ref[..., :2] + offsets * (ref[..., 2:] * 0.5 / self.n_points)
        raise ValueError(
            f"MSDeformAttn: refer_bbox's last dimension must be 2 (points) or 4 (boxes), got {coords}"
        )

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
                (cx, cy, w, h), normalised to [0, 1].
            value: (bs, num_keys, d_model), all levels flattened and concatenated.
            value_shapes: n_levels (H, W) pairs; sum of H * W must be num_keys.
            value_mask: (bs, num_keys), True where a key is padding (its value is zeroed).

        Returns:
            (bs, nq, d_model).
        """
        _check_value_shapes(value, value_shapes)
        bs, nq = query.shape[:2]
        per_query = (bs, nq, self.n_heads, self.n_levels, self.n_points)

        values = self.value_proj(value)
        if value_mask is not None:
            values = values.masked_fill(value_mask[..., None], 0.0)
        # view with the traced batch size (unflatten would bake the export batch into ONNX graphs)
        values = values.view(bs, value.shape[1], self.n_heads, -1)  # (bs, num_keys, heads, head_dim)

        # Where to sample and how to weigh the samples stays float32 under autocast: a bf16 location is off
        # by up to 1/256 of the map, and the projections around this block are the ones worth speeding up.
        with float32_island(query) as fp32:
            query = fp32(query)
            offsets = self.sampling_offsets(query).view(*per_query, 2)
            logits = self.attention_weights(query).view(bs, nq, self.n_heads, -1)  # softmax over levels * points
            weights = logits.softmax(-1).view(per_query)
            locations = self._locations(fp32(refer_bbox), offsets, value_shapes)
            sampled = multi_scale_deformable_attn_pytorch(fp32(values), value_shapes, locations, weights)
        return self.output_proj(sampled)


def _residual_norm(width: int, p: float) -> tuple[nn.Dropout, nn.LayerNorm]:
    """Dropout on a residual branch and the LayerNorm applied after adding it back."""
    return nn.Dropout(p), nn.LayerNorm(width)


class DeformableTransformerDecoderLayer(nn.Module):
    """Query self-attention, deformable cross-attention into the image features, then an FFN; each
    sublayer is added back to its input and normalised (post-norm)."""

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
        # sublayer 1, sequence-first like the released weights' module (forward transposes)
        self.self_attn = nn.MultiheadAttention(embed_dim=d_model, num_heads=n_heads, dropout=dropout)
        self.dropout1, self.norm1 = _residual_norm(d_model, dropout)
        # sublayer 2
        self.cross_attn = MSDeformAttn(d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points)
        self.dropout2, self.norm2 = _residual_norm(d_model, dropout)
        # sublayer 3: linear1 -> act -> dropout3 -> linear2, then dropout4 and norm3 around it
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.act = _make_act(act)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4, self.norm3 = _residual_norm(d_model, dropout)

    @staticmethod
    def with_pos_embed(tensor: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        """`tensor + pos` when a positional embedding is given, else `tensor`."""
        return _with_pos_embed(tensor, pos)

    def forward_ffn(self, tgt: torch.Tensor) -> torch.Tensor:
        """Feed-forward sublayer with its residual and norm3; (bs, nq, d_model) -> same."""
        hidden = self.dropout3(self.act(self.linear1(tgt)))
        return self.norm3(tgt + self.dropout4(self.linear2(hidden)))

    def _self_attend(
        self,
        embed: torch.Tensor,
        query_pos: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """(bs, nq, d) -> (bs, nq, d) attention among the queries.

        The attention map is not requested: without it PyTorch takes its fused scaled-dot-product
        kernel (same result up to float rounding, about a third faster forward + backward on CPU).
        """
        qk = _with_pos_embed(embed, query_pos).transpose(0, 1)  # (nq, bs, d)
        out, _ = self.self_attn(qk, qk, embed.transpose(0, 1), attn_mask=attn_mask, need_weights=False)
        return out.transpose(0, 1)

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
        embed = self.norm1(embed + self.dropout1(self._self_attend(embed, query_pos, attn_mask)))
        # every level is read around the same box: one reference "level" broadcast over all
        read = self.cross_attn(_with_pos_embed(embed, query_pos), refer_bbox.unsqueeze(2), feats, shapes, padding_mask)
        embed = self.norm2(embed + self.dropout2(read))
        return self.forward_ffn(embed)


class DeformableTransformerDecoder(nn.Module):
    """`num_layers` copies of one decoder layer with iterative box refinement.

    Every layer adds a predicted delta, in logit space, to its reference box; the refined box is the
    next layer's reference. Training returns all layers' boxes and logits (for the auxiliary losses),
    evaluation only those of layer `eval_idx`.
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
        self.hidden_dim, self.num_layers = hidden_dim, num_layers
        self.eval_idx = eval_idx % num_layers  # a negative index counts from the last layer

    def _refinements(
        self,
        embed: torch.Tensor,
        refer: torch.Tensor,
        feats: torch.Tensor,
        shapes: list,
        bbox_head: nn.ModuleList,
        pos_mlp: nn.Module,
        attn_mask: torch.Tensor | None,
        padding_mask: torch.Tensor | None,
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Run the layers lazily, yielding (index, embeddings, box delta, refined box) after each.

        `refer` is the sigmoid reference box. In training the next layer starts from the refined box
        detached, so each layer learns its own delta.
        """
        for i, layer in enumerate(self.layers):
            embed = layer(embed, refer, feats, shapes, padding_mask, attn_mask, pos_mlp(refer))
            # the box delta and the refined reference box stay float32 under autocast
            delta = run_in_float32(bbox_head[i], embed)  # (bs, nq, 4), logit space
            refined = torch.sigmoid(delta + inverse_sigmoid(refer))
            yield i, embed, delta, refined
            refer = refined.detach() if self.training else refined

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
        steps = self._refinements(
            embed, refer_bbox.sigmoid(), feats, shapes, bbox_head, pos_mlp, attn_mask, padding_mask
        )
        boxes, logits = [], []
        if not self.training:
            for i, out, _, refined in steps:
                if i == self.eval_idx:
                    boxes.append(refined)
                    logits.append(run_in_float32(score_head[i], out))
                    break
            return torch.stack(boxes), torch.stack(logits)

        previous = None  # the previous layer's refined box, still attached to the graph
        for i, out, delta, refined in steps:
            # look forward twice: from layer 1 on, the supervised box is built on the previous box *with*
            # its gradient, while the next layer's reference stays detached
            boxes.append(refined if previous is None else torch.sigmoid(delta + inverse_sigmoid(previous)))
            logits.append(run_in_float32(score_head[i], out))
            previous = refined
        return torch.stack(boxes), torch.stack(logits)
