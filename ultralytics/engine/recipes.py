"""Training recipes: named sets of settings, and the per-epoch augmentation schedule they use.

``recipe=ultralytics`` (the default) changes nothing. ``recipe=rtdetrv2`` sets RT-DETRv2's optimizer
(AdamW 1e-4, backbone 1e-5, weight decay 1e-4, no decay on norms and biases, a step every batch),
gradient clip 0.1 and EMA 0.9999 with a 2000-update warm-up. ``recipe=deim`` keeps that shape and
adds DEIM's methods for fast convergence: the matchability-aware loss, dense one-to-one matching
through scheduled mosaic/mixup, and the flat-then-cosine schedule with augmentation-free final
epochs; its learning rates suit training from scratch. A key the user sets explicitly always wins
over the recipe's value. See docs/recipes.md.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from ultralytics.utils import LOGGER

# A recipe value is a constant or a function of the run's settings (e.g. half of `epochs`).
RecipeValue = Union[Any, Callable[[dict], Any]]

_RTDETRV2: dict[str, RecipeValue] = {
    "optimizer": "AdamW",
    "lr0": 1e-4,
    "lr_backbone": 0.1,
    "weight_decay": 1e-4,
    "momentum": 0.9,  # AdamW's beta1
    "warmup_bias_lr": 0.0,
    "nbs": lambda s: s["batch"],  # one optimizer step per batch, no accumulation to 64 images
    "clip_grad": 0.1,
    "ema_decay": 0.9999,
    "ema_tau": 2000,
    "close_mosaic": 0,
    "no_aug_epochs": lambda s: max(1, round(s["epochs"] / 24)),  # RT-DETRv2 stops 3 of 72 epochs early
}

RECIPES: dict[str, dict[str, RecipeValue]] = {
    "ultralytics": {},
    "rtdetrv2": _RTDETRV2,
    "deim": {
        **_RTDETRV2,
        "lr0": 5e-4,  # from scratch: the backbone learns as fast as the rest; 1e-3 learnt later and noisier
        "lr_backbone": 1.0,
        "warmup_epochs": 0.0,  # the trainer's warm-up lasts >= 100 iterations, most of a short run
        "cls_loss": "mal",
        "mal_gamma": 1.5,
        "mosaic": 0.5,
        "mixup": 0.5,
        "dense_o2o": 0.5,
        "lrf": 0.05,
        "flat_lr_epochs": lambda s: s["epochs"] // 2,
        "no_aug_epochs": lambda s: max(1, round(s["epochs"] / 10)),
    },
}

CLS_LOSSES = ("vfl", "mal")


def recipe_settings(settings: dict, explicit: set[str]) -> dict:
    """The values the run's `recipe` sets, for every key of it not in `explicit` (the user's own keys).

    settings: the run's full settings (defaults plus overrides); computed values read them.
    Raises ValueError for an unknown recipe or classification loss, naming the accepted values.
    """
    name = settings.get("recipe") or "ultralytics"
    if name not in RECIPES:
        raise ValueError(f"recipe='{name}' is not a known recipe; use one of {', '.join(RECIPES)}")
    chosen = {}
    for key, value in RECIPES[name].items():
        if key not in explicit:
            chosen[key] = value(settings) if callable(value) else value
    cls_loss = {**settings, **chosen}.get("cls_loss", "vfl")
    if cls_loss not in CLS_LOSSES:
        raise ValueError(f"cls_loss='{cls_loss}' is not valid; use one of {', '.join(CLS_LOSSES)}")
    return chosen


def mix_probability(p: float, epoch: int, epochs: int, dense_o2o: float, no_aug_epochs: int) -> float:
    """Mosaic or mixup probability in `epoch` (0-based) under dense one-to-one matching.

    With `dense_o2o` = 0 the probability is `p` throughout (today's behaviour). Otherwise it is `p`
    for the first `dense_o2o` share of the augmented epochs (all but the final `no_aug_epochs`), so
    that early images carry several images' targets, then falls linearly to 0 at the augmented
    epochs' end.
    """
    if dense_o2o <= 0:
        return p
    augmented = epochs - no_aug_epochs
    full = dense_o2o * augmented
    if epoch < full:
        return p
    if epoch >= augmented:
        return 0.0
    return p * (augmented - epoch) / (augmented - full)


def schedule_augmentation(args: Any, dataset: Any, epoch: int, epochs: int) -> bool:
    """Bring the training dataset's augmentation in line with epoch `epoch`; True if it changed.

    The final `no_aug_epochs` train without any augmentation; before them, with `dense_o2o`, the
    mosaic and mixup probabilities follow `mix_probability`.
    """
    if args.no_aug_epochs and epoch >= epochs - args.no_aug_epochs:
        if not dataset.augment:
            return False
        LOGGER.info(f"no_aug_epochs: the last {args.no_aug_epochs} epochs train without augmentation")
        dataset.stop_augmentation()
        return True
    if not args.dense_o2o or not dataset.augment:
        return False
    schedule = [
        mix_probability(p, epoch, epochs, args.dense_o2o, args.no_aug_epochs) for p in (args.mosaic, args.mixup)
    ]
    changed = dataset.set_mix_probabilities(*schedule)
    if changed:
        LOGGER.info(f"dense_o2o: epoch {epoch + 1} mosaic p={schedule[0]:.3g}, mixup p={schedule[1]:.3g}")
    return changed
