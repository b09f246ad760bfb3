"""Training recipes and the fast-convergence options: MAL, flat-then-cosine lr, backbone groups, clip, EMA,
the mosaic/mixup schedule and the augmentation-free final epochs (docs/recipes.md)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn, optim

TINY = "tests/fixtures/rtdetr-tiny-FocalModulation.yaml"


# ------------------------------------------------------------------------------------------------
# The matchability-aware loss
# ------------------------------------------------------------------------------------------------
def test_mal_on_a_hand_computed_case():
    """Two queries, two classes: query 0 matched to class 0 with IoU 0.5, query 1 unmatched; gamma 2.

    Query 0, class 0 (p = 0.5, target 0.5**2 = 0.25, weight 1): -(0.25 ln 0.5 + 0.75 ln 0.5) = ln 2.
    Query 0, class 1 (p = 0.5, negative, weight 0.25): 0.25 ln 2.
    Query 1, both classes (p = 0.25, weight 0.0625): 0.0625 * -ln 0.75 each.
    The mean over the two queries of the sums over classes is half the total.
    """
    from ultralytics.models.utils.loss import matchability_aware_loss

    logits = torch.tensor([[[0.0, 0.0], [math.log(1 / 3), math.log(1 / 3)]]])  # (1, 2, 2)
    label = torch.tensor([[[1, 0], [0, 0]]])
    quality = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    expected = (math.log(2) + 0.25 * math.log(2) + 2 * 0.0625 * -math.log(0.75)) / 2
    assert matchability_aware_loss(logits, quality, label, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_mal_still_teaches_a_poorly_localised_match():
    """At IoU 0.1 the varifocal loss weights the positive by 0.1; MAL pulls p towards 0.1**1.5 at full weight."""
    from ultralytics.models.utils.loss import matchability_aware_loss
    from ultralytics.utils.loss import VarifocalLoss

    label, quality = torch.tensor([[[1.0]]]), torch.tensor([[[0.1]]])
    grads = []
    for loss_of in (lambda x: matchability_aware_loss(x, quality, label), lambda x: VarifocalLoss()(x, quality, label)):
        logit = torch.tensor([[[-4.0]]], requires_grad=True)  # p = 0.018, far below both targets
        loss_of(logit).backward()
        grads.append(-logit.grad.item())  # > 0: the loss wants the score up
    mal_pull, vfl_pull = grads
    assert mal_pull > 0 and vfl_pull > 0
    assert mal_pull > 1.5 * vfl_pull


def test_detr_loss_class_term_with_mal():
    """DETRLoss(mal_gamma=g) scores the class term with MAL, normalised per matched box like the focal losses."""
    from ultralytics.models.utils.loss import DETRLoss, matchability_aware_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[0, 3, 3, 2, 3], [3, 1, 3, 3, 3]])  # 3 = no object
    quality = torch.zeros(2, 5)
    quality[0, 0], quality[0, 3], quality[1, 1] = 0.8, 0.3, 0.6
    criterion = DETRLoss(nc=3, use_vfl=True, mal_gamma=1.5)
    one_hot = torch.nn.functional.one_hot(labels, 4)[..., :3]
    expected = matchability_aware_loss(logits, quality[..., None] * one_hot, one_hot, 1.5) / (3 / 5)
    assert criterion._class_term(logits, labels, quality, num_matched=3).item() == pytest.approx(expected.item())
    varifocal = DETRLoss(nc=3, use_vfl=True)._class_term(logits, labels, quality, num_matched=3)
    assert varifocal.item() != pytest.approx(expected.item())


# ------------------------------------------------------------------------------------------------
# The flat-then-cosine schedule and backbone groups
# ------------------------------------------------------------------------------------------------
def test_flat_cosine_learning_rates_at_chosen_epochs():
    """20 epochs, 10 flat, the last 2 without augmentation, lrf 0.05, lr0 1e-3, as the optimizer sees them."""
    from ultralytics.engine.optimization import flat_cosine_factor

    factor = flat_cosine_factor(lrf=0.05, flat_lr_epochs=10, no_aug_epochs=2, total_epochs=lambda: 20)
    optimizer = optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:11] == [1e-3] * 11  # flat, and the cosine starts at its top in epoch 10
    assert lrs[14] == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))  # half way down the cosine (epoch 14 of 10-18)
    assert lrs[12] == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert lrs[18:] == [pytest.approx(5e-5)] * 2  # held at lr0 * lrf while augmentation is off
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_separate_backbone_keeps_the_three_groups_first():
    from ultralytics.engine.optimization import make_optimizer, separate_backbone, split_parameters

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.LayerNorm(4))
    optimizer = make_optimizer("AdamW", split_parameters(model), lr=1e-4, momentum=0.9, decay=1e-4)
    separate_backbone(optimizer, list(model[:2].parameters()), ratio=0.1)
    groups = optimizer.param_groups
    assert len(groups) == 6
    assert [g["lr"] for g in groups] == pytest.approx([1e-4] * 3 + [1e-5] * 3)
    assert [g["weight_decay"] for g in groups] == [0.0, 1e-4, 0.0, 0.0, 1e-4, 0.0]  # no decay on biases, norms
    head = {id(p) for g in groups[:3] for p in g["params"]}
    assert head == {id(p) for p in model[2:].parameters()}
    assert [len(g["params"]) for g in groups[3:]] == [2, 1, 1]  # conv and bn bias, conv weight, bn weight


# ------------------------------------------------------------------------------------------------
# The recipe switch
# ------------------------------------------------------------------------------------------------
def _defaults(**changes) -> dict:
    from ultralytics.utils import DEFAULT_CFG_DICT

    return {**DEFAULT_CFG_DICT, **changes}


def test_default_recipe_sets_nothing_and_defaults_are_neutral():
    from ultralytics.engine.recipes import recipe_settings
    from ultralytics.utils import DEFAULT_CFG_DICT as d

    assert recipe_settings(_defaults(), explicit=set()) == {}
    assert (d["recipe"], d["cls_loss"], d["lr_backbone"], d["clip_grad"]) == ("ultralytics", "vfl", 1.0, 10.0)
    assert (d["ema_decay"], d["ema_tau"], d["flat_lr_epochs"], d["no_aug_epochs"], d["dense_o2o"]) == (0.9999, 2000, 0, 0, 0)


def test_rtdetrv2_recipe_values_and_explicit_keys_win():
    from ultralytics.engine.recipes import recipe_settings

    chosen = recipe_settings(_defaults(recipe="rtdetrv2", batch=8, epochs=72), explicit={"recipe", "batch", "epochs"})
    expected = dict(optimizer="AdamW", lr0=1e-4, lr_backbone=0.1, weight_decay=1e-4, warmup_bias_lr=0.0, nbs=8)
    expected.update(clip_grad=0.1, ema_decay=0.9999, ema_tau=2000, close_mosaic=0, no_aug_epochs=3)
    assert {k: chosen[k] for k in expected} == expected
    mine = recipe_settings(_defaults(recipe="rtdetrv2", lr0=5e-4), explicit={"recipe", "lr0"})
    assert "lr0" not in mine and mine["lr_backbone"] == 0.1


def test_deim_recipe_schedule_follows_epochs():
    from ultralytics.engine.recipes import recipe_settings

    chosen = recipe_settings(_defaults(recipe="deim", epochs=20), explicit={"recipe", "epochs"})
    assert chosen["cls_loss"] == "mal" and chosen["flat_lr_epochs"] == 10 and chosen["no_aug_epochs"] == 2
    assert (chosen["optimizer"], chosen["lr0"], chosen["lr_backbone"], chosen["warmup_epochs"]) == ("AdamW", 5e-4, 1.0, 0.0)
    assert chosen["dense_o2o"] > 0 and chosen["mixup"] > 0 and chosen["clip_grad"] == 0.1


@pytest.mark.parametrize("changes, named", [({"recipe": "fast"}, "recipe='fast'"), ({"cls_loss": "focal"}, "cls_loss='focal'")])
def test_unknown_recipe_or_loss_names_the_choices(changes, named):
    from ultralytics.engine.recipes import recipe_settings

    with pytest.raises(ValueError, match=named) as err:
        recipe_settings(_defaults(**changes), explicit=set(changes))
    assert "use one of" in str(err.value)


def test_recipe_keys_have_type_rules():
    from ultralytics.cfg import get_cfg

    for key in ("flat_lr_epochs", "ema_tau", "no_aug_epochs", "clip_grad", "mal_gamma"):
        with pytest.raises(TypeError, match=key):
            get_cfg(overrides={key: "many"})
    with pytest.raises(ValueError, match="dense_o2o"):
        get_cfg(overrides={"dense_o2o": 1.5})


def test_cli_unknown_recipe_is_a_usage_error():
    from ultralytics.cfg import entrypoint

    with pytest.raises(SystemExit) as exit_info:
        entrypoint(f"yolo train model={TINY} data=shapes.yaml epochs=1 imgsz=64 device=cpu recipe=fast")
    assert exit_info.value.code == 2


@pytest.fixture(scope="module")
def rtdetrv2_trainer(tmp_path_factory):
    """An RTDETRTrainer with recipe=rtdetrv2, set up (model, loaders, EMA, optimizer) but not trained."""
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    root = tmp_path_factory.mktemp("recipe")
    mp = pytest.MonkeyPatch()
    mp.setenv("ULTRALYTICS_DATASETS_DIR", str(root / "datasets"))
    overrides = dict(model=TINY, data="shapes.yaml", epochs=2, imgsz=64, batch=4, device="cpu", recipe="rtdetrv2")
    trainer = RTDETRTrainer(overrides={**overrides, "project": str(root), "plots": False, "fraction": 0.05})
    trainer._setup_train(world_size=1)
    yield trainer
    mp.undo()


def test_trainer_applies_the_rtdetrv2_recipe(rtdetrv2_trainer):
    trainer = rtdetrv2_trainer
    groups = trainer.optimizer.param_groups
    assert type(trainer.optimizer).__name__ == "AdamW" and trainer.accumulate == 1  # nbs = batch
    assert [g["lr"] for g in groups] == pytest.approx([1e-4] * 3 + [1e-5] * 3)
    assert [g["weight_decay"] for g in groups] == pytest.approx([0.0, 1e-4, 0.0] * 2)
    assert trainer.ema.decay(2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert trainer.args.no_aug_epochs == 1 and trainer.args.close_mosaic == 0


def test_trainer_clips_gradients_to_clip_grad(rtdetrv2_trainer):
    trainer = rtdetrv2_trainer
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.ones_like(p)
    assert trainer._step_blocker() == ""
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    assert total.item() == pytest.approx(0.1, rel=1e-4)
    trainer.optimizer.zero_grad()


# ------------------------------------------------------------------------------------------------
# Dense one-to-one matching: the mosaic/mixup schedule, and the augmentation-free final epochs
# ------------------------------------------------------------------------------------------------
def test_mix_probability_per_epoch():
    from ultralytics.engine.recipes import mix_probability

    per_epoch = [mix_probability(0.5, e, epochs=20, dense_o2o=0.5, no_aug_epochs=2) for e in range(20)]
    assert per_epoch[:10] == [0.5] * 10  # full for half of the 18 augmented epochs (0-8) and at the ramp's top (9)
    assert per_epoch[13] == pytest.approx(0.5 * 5 / 9) and per_epoch[17] == pytest.approx(0.5 / 9)
    assert per_epoch[18:] == [0.0, 0.0]
    assert [mix_probability(0.5, e, 20, dense_o2o=0.0, no_aug_epochs=2) for e in (0, 19)] == [0.5, 0.5]


def test_schedule_augmentation_on_a_dataset(tmp_path, monkeypatch):
    from ultralytics.data.augment import Mosaic, MixUp, find_transforms
    from ultralytics.data.dataset import RTDETRDataset
    from ultralytics.data.shapes import generate_shapes_dataset
    from ultralytics.engine.recipes import schedule_augmentation
    from ultralytics.utils import DEFAULT_CFG

    root = generate_shapes_dataset(tmp_path / "shapes", n_train=4, n_val=1)
    hyp = SimpleNamespace(**{**vars(DEFAULT_CFG), "mosaic": 0.5, "mixup": 0.5, "dense_o2o": 0.5, "no_aug_epochs": 2})
    data = {"names": {i: str(i) for i in range(6)}, "nc": 6, "channels": 3}
    dataset = RTDETRDataset(img_path=str(root / "images" / "train"), imgsz=64, augment=True, hyp=hyp, data=data)

    def probabilities() -> list[float]:
        return [t.p for kind in (Mosaic, MixUp) for t in find_transforms(dataset.transforms, kind)]

    assert not schedule_augmentation(hyp, dataset, epoch=3, epochs=20) and probabilities() == [0.5, 0.5]
    assert schedule_augmentation(hyp, dataset, epoch=13, epochs=20)
    assert probabilities() == pytest.approx([0.5 * 5 / 9] * 2)
    assert schedule_augmentation(hyp, dataset, epoch=18, epochs=20)
    assert not dataset.augment and probabilities() == []
    sample = dataset[0]
    assert tuple(sample["img"].shape) == (3, 64, 64)
    assert not schedule_augmentation(hyp, dataset, epoch=19, epochs=20)
