"""CPU bfloat16: when the bf16 path is chosen, how close it stays to float32, which parts stay float32.

The machine running the tests may lack native bf16 (AVX2 only): the choice is tested by replacing the
capability probe, and the numbers by running autocast anyway (PyTorch emulates bf16 kernels there,
slowly but with the same rounding), on the tiny fixture model at 64-96 px.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ultralytics.utils import precision

REPO = Path(__file__).resolve().parents[1]
TINY_FIXTURE = str(REPO / "tests" / "fixtures" / "rtdetr-tiny-FocalModulation.yaml")

# Bounds of bf16 against float32 on the tiny model with the same queries selected (measured: scores
# differ by up to about 3e-3, box coordinates by up to about 2e-3 of the image side).
SCORE_BOUND = 0.02
BOX_BOUND = 0.01


@pytest.fixture
def native_bf16(monkeypatch):
    """Set what the capability probe answers: `native_bf16(True)` or `native_bf16(False)`; warnings reset."""
    monkeypatch.setattr(precision, "_warned", set())

    def answer(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return answer


def _tiny_model(boxes_move: bool = True):
    """The fixture model (nc=6) in eval mode; with `boxes_move` the zero-initialised box heads get weights,
    so that the decoder's box deltas are not all zero."""
    from ultralytics.nn.tasks import RTDETRDetectionModel

    torch.manual_seed(0)
    model = RTDETRDetectionModel(TINY_FIXTURE, nc=6, verbose=False).eval()
    if boxes_move:
        head = model.model[-1]
        with torch.no_grad():
            for box_head in (head.enc_bbox_head, *head.dec_bbox_head):
                box_head.layers[-1].weight.normal_(0, 0.05)
    return model


# ------------------------------------------------------------------------------------------------
# Choosing the path
# ------------------------------------------------------------------------------------------------
def test_bf16_chosen_only_on_a_cpu_with_native_bf16(native_bf16, captured_log):
    native_bf16(True)
    assert precision.choose_cpu_bf16(True, torch.device("cpu"))
    assert not precision.choose_cpu_bf16(False, torch.device("cpu"))
    assert not precision.choose_cpu_bf16(True, "cuda:0")  # CUDA keeps its float16 half

    native_bf16(False)
    with captured_log() as messages:
        assert not precision.choose_cpu_bf16(True, "cpu")
        assert not precision.choose_cpu_bf16(True, "cpu")
    refusals = [m for m in messages if "AVX512-BF16" in m]
    assert len(refusals) == 1 and "float32 is used instead" in refusals[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx2", "avx512f", "avx512_bf16"}, True), ({"avx2", "amx_bf16", "amx_tile"}, True), ({"avx2", "avx512f"}, False)],
)
def test_native_bf16_read_from_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: flags)
    precision.cpu_has_native_bf16.cache_clear()
    try:
        assert precision.cpu_has_native_bf16() is expected
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_autobackend_half_on_cpu(native_bf16):
    from ultralytics.nn.autobackend import AutoBackend

    native_bf16(True)
    backend = AutoBackend(_tiny_model(), device=torch.device("cpu"), fp16=True, verbose=False)
    assert backend.bf16 and not backend.fp16
    conv = next(m for m in backend.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = backend(torch.rand(1, 3, 64, 64))
    assert y.dtype == torch.float32 and y.shape == (1, 20, 10)

    native_bf16(False)
    refused = AutoBackend(_tiny_model(), device=torch.device("cpu"), fp16=True, verbose=False)
    assert not refused.bf16 and not refused.fp16


def _projection_dtypes(model) -> list[torch.dtype]:
    """Registers a hook on the decoder's first value projection (a Linear that fusing keeps); the returned
    list fills with its output dtypes."""
    seen: list[torch.dtype] = []
    projection = model.model[-1].decoder.layers[0].cross_attn.value_proj
    projection.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    return seen


def test_predict_half_runs_bf16_on_cpu(native_bf16):
    from ultralytics import RTDETR

    native_bf16(True)
    model = RTDETR(TINY_FIXTURE)
    seen = _projection_dtypes(model.model)
    image = np.full((64, 64, 3), 90, np.uint8)
    results = model.predict(image, imgsz=64, half=True, device="cpu", verbose=False)
    assert seen and set(seen) == {torch.bfloat16}
    assert results[0].boxes.data.dtype == torch.float32
    assert model.predictor.args.half  # half=True is reported as honoured

    native_bf16(False)
    refused = RTDETR(TINY_FIXTURE)
    seen = _projection_dtypes(refused.model)
    refused.predict(image, imgsz=64, half=True, device="cpu", verbose=False)
    assert set(seen) == {torch.float32} and not refused.predictor.args.half


# ------------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------------
def _outputs_with_pinned_queries(model, x: torch.Tensor, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 output, bf16 output), the bf16 run reusing float32's query selection.

    Queries of an untrained model score almost alike, so bf16 rounding may pick other ones; pinning
    the selection compares the same queries row by row.
    """
    from ultralytics.nn.modules.head import RTDETRDecoder

    select = RTDETRDecoder._top_proposals
    pinned: list[torch.Tensor] = []

    def first_selection(self, logits: torch.Tensor) -> torch.Tensor:
        if not pinned:
            pinned.append(select(self, logits))
        return pinned[0]

    monkeypatch.setattr(RTDETRDecoder, "_top_proposals", first_selection)
    with torch.inference_mode():
        fp32 = model(x)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x)[0]
    return fp32, bf16


def test_bf16_outputs_stay_close_to_float32(monkeypatch):
    model = _tiny_model()
    fp32, bf16 = _outputs_with_pinned_queries(model, torch.rand(2, 3, 96, 96, generator=torch.manual_seed(1)), monkeypatch)
    assert fp32.dtype == bf16.dtype == torch.float32  # (bs, nq, 4 + nc)
    box_error = (fp32[..., :4] - bf16[..., :4]).abs().max().item()
    score_error = (fp32[..., 4:] - bf16[..., 4:]).abs().max().item()
    assert 0 < box_error < BOX_BOUND, box_error  # > 0: bf16 really ran
    assert score_error < SCORE_BOUND, score_error


def test_float32_islands_are_no_ops_without_autocast():
    x = torch.rand(3, 4)
    with precision.float32_island(x) as fp32:
        assert fp32(x) is x
    half_head = torch.nn.Linear(4, 2).half()
    assert precision.run_in_float32(half_head, x.half()).dtype == torch.float16  # float16 models keep float16
    assert precision.float32_like(x) is x


def test_sensitive_parts_run_in_float32_under_autocast(monkeypatch):
    """Hooks record the dtypes that reach the decoder's sensitive parts while the rest runs bf16."""
    from ultralytics.nn.modules import transformer

    model = _tiny_model()
    head = model.model[-1]
    attn = head.decoder.layers[0].cross_attn
    float32_parts = {
        "sampling_offsets": attn.sampling_offsets,
        "attention_weights": attn.attention_weights,
        "enc_score_head": head.enc_score_head,
        "enc_bbox_head": head.enc_bbox_head,
        "dec_score_head": head.dec_score_head[0],
        "dec_bbox_head": head.dec_bbox_head[0],
    }
    bf16_parts = {"value_proj": attn.value_proj, "output_proj": attn.output_proj, "linear1": head.decoder.layers[0].linear1}
    seen: dict[str, set] = {}
    for name, module in {**float32_parts, **bf16_parts}.items():
        module.register_forward_hook(
            lambda mod, args, out, name=name: seen.setdefault(name, set()).update({args[0].dtype, out.dtype})
        )
    sampler = transformer.multi_scale_deformable_attn_pytorch

    def record_sampler(value, shapes, locations, weights):
        seen["sampling"] = {value.dtype, locations.dtype, weights.dtype}
        return sampler(value, shapes, locations, weights)

    monkeypatch.setattr(transformer, "multi_scale_deformable_attn_pytorch", record_sampler)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.rand(1, 3, 64, 64))
    for name in (*float32_parts, "sampling"):
        assert seen[name] == {torch.float32}, name
    for name in bf16_parts:
        assert torch.bfloat16 in seen[name], name
    assert head.anchors.dtype == torch.float32


def test_loss_and_matcher_inputs_are_float32_under_autocast(monkeypatch):
    from ultralytics.models.utils.loss import RTDETRDetectionLoss
    from ultralytics.models.utils.ops import HungarianMatcher

    model = _tiny_model().train()
    batch = {
        "img": torch.rand(2, 3, 64, 64),
        "cls": torch.tensor([[0.0], [3.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.3, 0.2, 0.2], [0.6, 0.4, 0.5, 0.3]]),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
    }
    dtypes: set = set()
    decode, match = RTDETRDetectionLoss.from_decoder, HungarianMatcher.forward

    def record_decoder(self, preds, targets):
        dtypes.update(t.dtype for t in preds[:4])
        return decode(self, preds, targets)

    def record_matcher(self, pred_bboxes, pred_scores, *args, **kwargs):
        dtypes.update({pred_bboxes.dtype, pred_scores.dtype})
        return match(self, pred_bboxes, pred_scores, *args, **kwargs)

    monkeypatch.setattr(RTDETRDetectionLoss, "from_decoder", record_decoder)
    monkeypatch.setattr(HungarianMatcher, "forward", record_matcher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, items = model.loss(batch)
    assert dtypes == {torch.float32}
    assert loss.dtype == items.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())


# ------------------------------------------------------------------------------------------------
# Validation and training
# ------------------------------------------------------------------------------------------------
def test_cfg_amp_accepts_bf16():
    from ultralytics.cfg import get_cfg

    assert get_cfg(overrides={"amp": "bf16"}).amp == "bf16"
    with pytest.raises(TypeError, match=r"'amp' must be True, False or bf16"):
        get_cfg(overrides={"amp": "fp8"})


def test_one_epoch_of_bf16_training(native_bf16, tiny_yaml, tiny_dataset, tmp_path):
    from ultralytics.models.rtdetr.train import RTDETRTrainer

    native_bf16(True)
    overrides = dict(model=tiny_yaml, data=tiny_dataset(n_train=2, n_val=1), epochs=1, imgsz=64, batch=2, workers=0)
    trainer = RTDETRTrainer(overrides={**overrides, "device": "cpu", "plots": False, "amp": "bf16", "project": str(tmp_path)})
    projection_dtypes: list = []
    validated_in_bf16: list = []
    trainer.add_callback("on_train_start", lambda tr: projection_dtypes.append(_projection_dtypes(tr.model)))
    trainer.add_callback(
        "on_fit_epoch_end", lambda tr: validated_in_bf16.append((tr.validator.bf16, dict(tr.metrics)))
    )
    trainer.train()
    assert trainer.amp is False and not trainer.scaler.is_enabled()  # no GradScaler for bf16
    assert torch.bfloat16 in projection_dtypes[0]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    # validation during training follows amp=bf16 (the final validation of best.pt is float32)
    in_bf16, metrics = validated_in_bf16[0]
    assert in_bf16 is True and metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    assert (Path(trainer.save_dir) / "weights" / "last.pt").is_file()
