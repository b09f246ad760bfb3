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

# What each rule does with a row, in the words error messages use.
RULE_TEXT: dict[str, str] = {
    "out": "args[0] is the output width (scaled by the width multiple) and the input width is put in front",
    "mid_out": "args[0] is a hidden width and args[1] the output width; the input width is put in front",
    "same": "the input width is put in front and is also the output width",
    "sum": "args are passed as written and the output width is the sum of the input widths",
    "decoder": "args[0] is nc and the list of input widths is passed after it",
    "given": "every constructor argument is written out, the input width first",
}
# Rules that combine several inputs (a list `from`); every other rule reads exactly one.
MULTI_INPUT_RULES = frozenset({"sum", "decoder"})
# Args a row needs at least, by rule ("given" declarations state their own count).
_RULE_MIN_ARGS = {"out": 1, "mid_out": 2, "decoder": 1}


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
    example:
        A correct yaml row for this module, quoted by parse_model's error messages.
    min_args:
        For "given": how many args a row must write; other rules know their own count.
    """

    channels: ChannelRule
    repeats_at: int | None = None
    out_channels: Callable[[Sequence], int] | None = None
    example: str = ""
    min_args: int = 0

    def mismatch(self, args: list, f: int | list[int]) -> str | None:
        """What a row's `from` and `args` get wrong under this rule, or None when they fit it."""
        several = self.channels in MULTI_INPUT_RULES
        if several and isinstance(f, int):
            return f"combines several inputs, so 'from' must be a list of layer indices, not the single index {f}"
        if not several and not isinstance(f, int):
            return f"reads one input, so 'from' must be a single layer index, not the list {f}"
        needed = max(_RULE_MIN_ARGS.get(self.channels, 0), self.min_args)
        if len(args) < needed:
            return f"needs at least {needed} arg{'s' * (needed > 1)}, got {args}"
        return None

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
