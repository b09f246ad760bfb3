"""Declarations that tell `parse_model` how a yaml row's `args` become constructor arguments.

A module class opts in by setting a class attribute, e.g. ``yaml_args = YamlArgs("out", repeats_at=2)``.
Class attributes are not part of a module's state_dict or pickle, so checkpoints are unaffected.
Modules without a declaration (e.g. ``nn.Upsample``) get their yaml args unchanged and output as
many channels as their (single) input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

ChannelRule = Literal["out", "mid_out", "same", "sum", "decoder", "given"]


def make_divisible(x: float, divisor: int) -> int:
    """Smallest multiple of divisor that is >= x (channel counts stay hardware friendly)."""
    return math.ceil(x / divisor) * divisor


@dataclass(frozen=True)
class YamlArgs:
    """How parse_model fills in channel arguments for one module class.

    channels:
        "out":     args[0] is the output width c2, scaled by the model's width multiple and capped
                   by max_channels (unless it equals nc); the input width c1 is prepended.
        "mid_out": args[0] is a hidden width and args[1] the output width, both taken as written;
                   c1 is prepended.
        "same":    c1 is prepended and the module keeps the channel count.
        "sum":     args are unchanged; the output width is the sum of the input widths (Concat).
        "decoder": the list of input widths is inserted at position 1 (after nc).
        "given":   the yaml spells out every argument; `out_channels(args)` gives the output width.
    repeats_at:
        Constructor position that receives the row's repeat count `n`; the module is then built once
        instead of being stacked n times.
    out_channels:
        Only for "given".
    """

    channels: ChannelRule
    repeats_at: int | None = None
    out_channels: Callable[[Sequence], int] | None = None

    def resolve(
        self,
        args: list,
        f: int | list[int],
        n: int,
        ch: list[int],
        width: float,
        max_channels: int,
        nc: int,
    ) -> tuple[list, int, int]:
        """Return (constructor args, output channels, remaining repeat count) for one yaml row."""
        c1 = ch[f] if isinstance(f, int) else None
        if self.channels == "out":
            c2 = args[0]
            if c2 != nc:
                c2 = make_divisible(min(c2, max_channels) * width, 8)
            args = [c1, c2, *args[1:]]
        elif self.channels == "mid_out":
            c2 = args[1]
            args = [c1, args[0], c2, *args[2:]]
        elif self.channels == "same":
            c2 = c1
            args = [c1, *args]
        elif self.channels == "sum":
            c2 = sum(ch[x] for x in f)
        elif self.channels == "decoder":
            c2 = None
            args = [*args[:1], [ch[x] for x in f], *args[1:]]
        else:  # "given"
            c2 = self.out_channels(args)
        if self.repeats_at is not None:
            args.insert(self.repeats_at, n)
            n = 1
        return args, c2, n
