"""How the trainer optimises: parameter groups, the optimizer, the per-epoch lr factor and the warm-up.

Parameters fall into three groups, in this order (upstream's pg0, pg1, pg2):

- pg0 ``biases``: every parameter whose qualified name contains "bias", no weight decay;
- pg1 ``weights``: the remaining parameters of non-normalisation layers, with weight decay;
- pg2 ``norms``: the weights of normalisation layers (BatchNorm, LayerNorm, ...), no weight decay.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from torch import nn, optim

from ultralytics.utils.torch_utils import TORCH_2_4, one_cycle

# Accepted `optimizer=` values, spelled as upstream prints them.
OPTIMIZERS = ("Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp", "SGD", "auto")

# Every normalisation layer class torch.nn exports (BatchNorm1d/2d/3d, LayerNorm, GroupNorm, ...).
NORM_LAYERS = tuple(obj for label, obj in vars(nn).items() if "Norm" in label and isinstance(obj, type))

# `optimizer=auto` switches from AdamW to SGD for runs longer than this many optimizer steps.
AUTO_SGD_AFTER = 10000


class ParameterGroups(NamedTuple):
    biases: list
    weights: list
    norms: list


def split_parameters(model: nn.Module) -> ParameterGroups:
    """The model's parameters as (pg0 biases, pg1 decayed weights, pg2 norm weights), in module order."""
    groups = ParameterGroups([], [], [])
    for prefix, module in model.named_modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for name, param in module.named_parameters(recurse=False):
            qualified = f"{prefix}.{name}" if prefix else name
            if "bias" in qualified:
                groups.biases.append(param)
            else:
                (groups.norms if is_norm else groups.weights).append(param)
    return groups


def auto_settings(iterations: float, nc: int) -> tuple[str, float, float]:
    """(name, lr, momentum) that `optimizer=auto` uses: AdamW with a class-count-scaled lr for short
    runs, SGD(lr=0.01) for long ones."""
    if iterations > AUTO_SGD_AFTER:
        return "SGD", 0.01, 0.9
    return "AdamW", round(0.002 * 5 / (4 + nc), 6), 0.9


def canonical_name(name: str) -> str:
    """`name` spelled as in OPTIMIZERS, whatever its case; raises for unknown optimizers."""
    for known in OPTIMIZERS[:-1]:
        if known.lower() == str(name).lower():
            return known
    raise NotImplementedError(
        f"optimizer='{name}' not found; the optimizers this trainer builds are {', '.join(OPTIMIZERS)}"
    )


def make_optimizer(
    name: str,
    groups: ParameterGroups,
    lr: float,
    momentum: float,
    decay: float,
) -> optim.Optimizer:
    """The `name` optimizer over the three groups; only pg1 gets weight decay `decay`."""
    name = canonical_name(name)
    # On CPU, torch's fused Adam/AdamW/SGD kernel does the same arithmetic in one pass per step
    # (about 3x faster for RT-DETR-l than one pass per tensor and operation). CUDA keeps the default.
    every = groups.biases + groups.weights + groups.norms
    fusable = TORCH_2_4 and name in {"Adam", "AdamW", "SGD"} and all(p.device.type == "cpu" for p in every)
    extra = {"fused": True} if fusable else {}
    if name == "SGD":
        optimizer = optim.SGD(groups.biases, lr=lr, momentum=momentum, nesterov=True, **extra)
    elif name == "RMSProp":
        optimizer = optim.RMSprop(groups.biases, lr=lr, momentum=momentum)
    else:  # the Adam family: `momentum` is beta1
        optimizer = getattr(optim, name)(groups.biases, lr=lr, betas=(momentum, 0.999), weight_decay=0.0, **extra)
    optimizer.add_param_group({"params": groups.weights, "weight_decay": decay})
    optimizer.add_param_group({"params": groups.norms, "weight_decay": 0.0})
    return optimizer


def lr_factor(cos_lr: bool, lrf: float, total_epochs: Callable[[], int]) -> Callable[[float], float]:
    """The LambdaLR factor of epoch x: from 1 down to `lrf`, linearly or along a cosine (`cos_lr`).

    total_epochs is read when the factor is evaluated by the linear schedule, so that a resumed
    fine-tuning run that extends `epochs` stretches the schedule with it.
    """
    if cos_lr:
        return one_cycle(1, lrf, total_epochs())

    def linear(x: float) -> float:
        remaining = max(1 - x / total_epochs(), 0)
        return remaining * (1.0 - lrf) + lrf

    return linear


def warm_up(
    optimizer: optim.Optimizer,
    step: int,
    steps: int,
    scheduled: float,
    bias_lr: float,
    momentum: tuple[float, float],
) -> None:
    """Iteration `step` of `steps` warm-up iterations: move lr and momentum linearly to their targets.

    The bias group (pg0) comes down from `bias_lr`, the other groups come up from 0, all towards
    initial_lr * `scheduled` (the epoch's lr factor); momentum goes from momentum[0] to momentum[1].
    """
    span = [0, steps]
    for index, group in enumerate(optimizer.param_groups):
        start = bias_lr if index == 0 else 0.0
        group["lr"] = np.interp(step, span, [start, group["initial_lr"] * scheduled])
        if "momentum" in group:
            group["momentum"] = np.interp(step, span, list(momentum))


def warm_up_accumulation(step: int, steps: int, full: float) -> int:
    """Batches per optimizer step during warm-up: from 1 to `full` (nbs / batch)."""
    return max(1, int(np.interp(step, [0, steps], [1, full]).round()))


def flat_cosine_factor(
    lrf: float,
    flat_lr_epochs: int,
    no_aug_epochs: int,
    total_epochs: Callable[[], int],
) -> Callable[[float], float]:
    """The LambdaLR factor of epoch x for DEIM's flat-then-cosine schedule.

    1 for the first `flat_lr_epochs` epochs; then half a cosine from 1 down to `lrf`, reached when the
    final `no_aug_epochs` (trained without augmentation) begin; `lrf` during those. total_epochs is
    read at each evaluation, as in `lr_factor`.
    """

    def factor(x: float) -> float:
        decay_end = total_epochs() - no_aug_epochs
        if x < flat_lr_epochs:
            return 1.0
        if x >= decay_end:
            return lrf
        progress = (x - flat_lr_epochs) / (decay_end - flat_lr_epochs)
        return lrf + (1.0 - lrf) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def separate_backbone(optimizer: optim.Optimizer, backbone: list[nn.Parameter], ratio: float) -> None:
    """Give the `backbone` parameters groups of their own at `ratio` times their group's lr.

    Each existing group (pg0 biases, pg1 weights, pg2 norms) keeps its non-backbone parameters; its
    backbone ones move to a twin group with the same settings and the scaled lr, appended after all
    existing groups, so pg0-pg2 keep their indices (the warm-up treats pg0 as the bias group).
    Must run before the first step and before the lr scheduler records the groups' initial lr.
    """
    in_backbone = {id(p) for p in backbone}
    twins = []
    for group in optimizer.param_groups:
        moved = [p for p in group["params"] if id(p) in in_backbone]
        group["params"] = [p for p in group["params"] if id(p) not in in_backbone]
        settings = {key: value for key, value in group.items() if key != "params"}
        twins.append({**settings, "params": moved, "lr": group["lr"] * ratio})
    for twin in twins:
        if twin["params"]:
            optimizer.add_param_group(twin)
