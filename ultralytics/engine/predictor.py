"""Inference engine: read a source batch by batch, run the model, turn outputs into `Results`, save them.

Sources: an image path, a folder, a glob, a list of paths, a .txt file listing paths, a video file,
a numpy BGR array, a PIL image, a list of those, or a (B, 3, H, W) float tensor in 0-1; live ones:
a camera index, an rtsp/rtmp/http(s) URL, a .streams file listing several, or 'screen'.
Models: anything `AutoBackend` loads (nn.Module, .pt, .torchscript, .onnx).

    yolo predict model=rtdetr-l-FocalModulation.pt source=path/to/images imgsz=640
    RTDETR("best.pt").predict("bus.jpg", conf=0.5, save=True)

One pass over a source fires, in this order: on_predict_start; per batch on_predict_batch_start,
on_predict_postprocess_end, on_predict_batch_end; and on_predict_end once the source is exhausted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ultralytics.cfg import get_save_dir
from ultralytics.data.augment import LetterBox
from ultralytics.data.loaders import load_inference_source
from ultralytics.engine.component import EngineComponent
from ultralytics.engine.results import Results
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.utils import DEFAULT_CFG, LOGGER, colorstr, ops
from ultralytics.utils.checks import check_imgsz, check_imshow
from ultralytics.utils.files import increment_path
from ultralytics.utils.torch_utils import select_device, smart_inference_mode

# Sources past this many items make a non-streaming call print the memory note below.
_LARGE_SOURCE = 1000

STREAM_WARNING = """
WARNING ⚠️ predict() without stream=True keeps every Results object (and its image) in memory until the
whole source is done; a long video or a large folder can exhaust RAM. Consume a generator instead:

    for result in model(source=..., stream=True):
        boxes = result.boxes  # Boxes with xyxy, conf, cls
"""

_STAGES = ("preprocess", "inference", "postprocess")


class _StageClock:
    """One `ops.Profile` per pipeline stage; `dt` is the last batch's time, `t` the running total."""

    def __init__(self, device: torch.device | None):
        self.stage = {name: ops.Profile(device=device) for name in _STAGES}

    def per_image_ms(self, n: int) -> dict[str, float]:
        """Milliseconds per image of the batch just timed (n images)."""
        return {name: clock.dt * 1e3 / n for name, clock in self.stage.items()}

    def mean_ms(self, seen: int) -> tuple[float, ...]:
        """Milliseconds per image over the whole run."""
        return tuple(clock.t / seen * 1e3 for clock in self.stage.values())


def _bgr_batch_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Equal-sized BGR uint8 images [(h, w, 3) x B] -> RGB uint8 tensor (B, 3, h, w), contiguous."""
    stacked = np.stack(images)  # (B, h, w, 3) BGR
    chw_rgb = stacked[..., ::-1].transpose(0, 3, 1, 2)  # (B, 3, h, w) RGB
    return torch.from_numpy(np.ascontiguousarray(chw_rgb))


class BasePredictor(EngineComponent):
    """Runs a model over an inference source and yields one `Results` per image or video frame.

    Subclasses provide `postprocess` (raw model output -> list of Results) and may change
    `pre_transform` (resizing of each BGR image before batching).
    """

    def __init__(
        self,
        cfg: str | Path | dict = DEFAULT_CFG,
        overrides: dict[str, Any] | None = None,
        _callbacks: dict[str, list[Callable]] | None = None,
    ):
        self._configure(cfg, overrides, _callbacks)
        args = self.args
        self.save_dir = get_save_dir(args)
        args.conf = 0.25 if args.conf is None else args.conf  # the predict default; validation asks for 0.001
        args.show = args.show and check_imshow(warn=True)  # no display: show nothing instead of failing
        self.done_warmup = False

        # Set by setup_model.
        self.model: AutoBackend | None = None
        self.device: torch.device | None = None
        self.data = args.data
        self.transforms = None
        # Set by setup_source and by each run.
        self.imgsz: list[int] | None = None
        self.dataset = None
        self.source_type = None
        self.vid_writer: dict[str, cv2.VideoWriter] = {}
        self.windows: list[str] = []
        self.seen = 0
        self.batch: tuple[list[str], Any, list[str]] | None = None
        self.results: list[Results] | None = None
        self.plotted_img: np.ndarray | None = None
        self.txt_path: Path | None = None
        self._lock = threading.Lock()  # several threads may share one predictor: runs take turns

    # ------------------------------------------------------------------------------------------
    # The stages a subclass may change
    # ------------------------------------------------------------------------------------------
    def preprocess(self, im: torch.Tensor | list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images [(h, w, 3) x B] or an RGB (B, 3, H, W) 0-1 tensor -> model input (B, 3, H, W) in 0-1."""
        from_arrays = not isinstance(im, torch.Tensor)
        batch = _bgr_batch_to_tensor(self.pre_transform(im)) if from_arrays else im
        batch = batch.to(self.device)
        batch = batch.half() if self.model.fp16 else batch.float()
        if from_arrays:
            batch /= 255  # uint8 0-255 -> 0-1; tensor sources are 0-1 already
        return batch

    def pre_transform(self, im: list[np.ndarray]) -> list[np.ndarray]:
        """Letterbox each image to imgsz; images of one shape get only the padding the stride needs."""
        one_shape = len({x.shape for x in im}) == 1
        resize = LetterBox(self.imgsz, auto=one_shape and self.model.pt, stride=self.model.stride)
        return [resize(image=x) for x in im]

    def inference(self, im: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Forward the (B, 3, H, W) batch; with visualize=True feature maps go to a folder per image."""
        self._check_inspection_supported()
        feature_dir: Path | bool = False
        if self.args.visualize and not self.source_type.tensor:
            feature_dir = increment_path(self.save_dir / Path(self.batch[0][0]).stem, mkdir=True)
        return self.model(im, *args, augment=self.args.augment, visualize=feature_dir, embed=self.args.embed, **kwargs)

    def _check_inspection_supported(self) -> None:
        """visualize and embed read the layers of a PyTorch model; an exported graph only has its outputs."""
        if self.model.pt or not (self.args.visualize or self.args.embed):
            return
        wanted = "embed" if self.args.embed else "visualize"
        raise ValueError(
            f"{wanted}={getattr(self.args, wanted)!r} needs a PyTorch model (.pt checkpoint or .yaml); "
            f"model='{self.args.model}' is an exported file whose graph only returns the predictions. "
            f"Load the .pt checkpoint it was exported from to {wanted}."
        )

    def postprocess(self, preds: torch.Tensor, img: torch.Tensor, orig_imgs: list[np.ndarray]) -> list[Results]:
        """Raw model output -> Results; the base class has no task and passes preds through."""
        return preds

    # ------------------------------------------------------------------------------------------
    # Entry points
    # ------------------------------------------------------------------------------------------
    def __call__(
        self,
        source: Any = None,
        model: Any = None,
        stream: bool = False,
        *args,
        **kwargs,
    ) -> list[Results] | Iterator[Results]:
        """Predict on `source`: a list of Results, or a generator of them with stream=True."""
        self.stream = stream
        run = self.stream_inference(source, model, *args, **kwargs)
        return run if stream else list(run)

    def predict_cli(self, source: Any = None, model: Any = None) -> None:
        """The CLI's run: drain the generator, so that results are written out and then dropped."""
        for _ in self.stream_inference(source, model):
            continue

    # ------------------------------------------------------------------------------------------
    # Set-up
    # ------------------------------------------------------------------------------------------
    def setup_model(self, model: Any, verbose: bool = True) -> None:
        """Wrap `model` (or args.model) in AutoBackend on the requested device, in eval mode."""
        args = self.args
        backend = AutoBackend(
            weights=model or args.model,
            device=select_device(args.device, verbose=verbose),
            dnn=args.dnn,
            data=args.data,
            fp16=args.half,
            batch=args.batch,
            fuse=True,
            verbose=verbose,
        )
        self.model = backend
        self.device = backend.device
        self.args.half = backend.fp16 or backend.bf16  # half is dropped where the backend cannot run it
        backend.eval()

    def setup_source(self, source: Any) -> None:
        """Fix the input size and open `source` as a batched loader in `self.dataset`."""
        self.imgsz = self._input_size()
        args = self.args
        loader = load_inference_source(
            source=source, batch=args.batch, vid_stride=args.vid_stride, buffer=args.stream_buffer
        )
        self.dataset, self.source_type = loader, loader.source_type
        if not getattr(self, "stream", True) and self._source_is_large():
            LOGGER.warning(STREAM_WARNING)
        self.vid_writer = {}

    def _input_size(self) -> list[int]:
        """args.imgsz checked against the stride, or the fixed size an exported graph demands."""
        wanted = check_imgsz(self.args.imgsz, stride=self.model.stride, min_dim=2)
        fixed = list(self.model.imgsz)
        if not self.model.static_hw or list(wanted) == fixed:
            return wanted
        # An exported RT-DETR graph has its input height and width baked in.
        LOGGER.warning(f"WARNING ⚠️ this exported model only accepts imgsz={fixed}; ignoring imgsz={wanted}")
        return fixed

    def _source_is_large(self) -> bool:
        """Videos, live streams and screenshots may never end; big folders are large too."""
        kind = self.source_type
        has_video = any(getattr(self.dataset, "video_flag", [False]))
        return kind.stream or kind.screenshot or has_video or len(self.dataset) > _LARGE_SOURCE

    # ------------------------------------------------------------------------------------------
    # The run
    # ------------------------------------------------------------------------------------------
    @smart_inference_mode()
    def stream_inference(self, source: Any = None, model: Any = None, *args, **kwargs) -> Iterator[Results]:
        """Yield Results batch by batch; only the current batch is held in memory."""
        if self.args.verbose:
            LOGGER.info("")
        if not self.model:
            self.setup_model(model)
        with self._lock:
            self._open_run(source if source is not None else self.args.source)
            clock = _StageClock(self.device)
            last_input = None
            self.run_callbacks("on_predict_start")
            for batch in self.dataset:
                self.batch = batch  # (paths, BGR images, log prefixes); callbacks read it here
                self.run_callbacks("on_predict_batch_start")
                last_input, out = self._run_batch(clock, *args, **kwargs)
                if self.args.embed:
                    yield from out  # embeddings skip postprocessing and its callbacks
                    continue
                self._finish_batch(clock, last_input)
                self.run_callbacks("on_predict_batch_end")
                yield from self.results
        self._close_run(clock, last_input)
        self.run_callbacks("on_predict_end")

    def _open_run(self, source: Any) -> None:
        """Open the source, create the output folders, warm the model up once, reset the counters."""
        self.setup_source(source)
        if self.args.save_txt:
            (self.save_dir / "labels").mkdir(parents=True, exist_ok=True)
        elif self.args.save:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        if not self.done_warmup:
            warm_batch = 1 if self.model.pt else self.dataset.bs
            self.model.warmup(imgsz=(warm_batch, 3, *self.imgsz))
            self.done_warmup = True
        self.seen, self.windows, self.batch = 0, [], None

    def _run_batch(self, clock: _StageClock, *args, **kwargs) -> tuple[torch.Tensor, list]:
        """Preprocess, forward and postprocess self.batch -> (model input, results or embeddings)."""
        _, originals, _ = self.batch
        with clock.stage["preprocess"]:
            model_input = self.preprocess(originals)  # (B, 3, H, W)
        with clock.stage["inference"]:
            preds = self.inference(model_input, *args, **kwargs)
        if self.args.embed:
            return model_input, list(preds.unbind(0))  # (B, C) pooled features -> one (C,) vector per image
        with clock.stage["postprocess"]:
            self.results = self.postprocess(preds, model_input, originals)
        self.run_callbacks("on_predict_postprocess_end")
        return model_input, self.results

    def _finish_batch(self, clock: _StageClock, model_input: torch.Tensor) -> None:
        """Stamp each result with its timings, write its outputs and log one line per image."""
        paths, _, infos = self.batch
        lines = list(infos)
        speed = clock.per_image_ms(len(lines))
        writes = self.args.verbose or self.args.save or self.args.save_txt or self.args.show
        for i, result in enumerate(self.results[: len(lines)]):
            self.seen += 1
            result.speed = dict(speed)
            if writes:
                lines[i] += self.write_results(i, Path(paths[i]), model_input, lines)
        if self.args.verbose:
            LOGGER.info("\n".join(lines))

    def _close_run(self, clock: _StageClock, last_input: torch.Tensor | None) -> None:
        """Release video writers and log the mean speed and where the outputs went."""
        for writer in self.vid_writer.values():
            writer.release()
        self.vid_writer = {}
        if self.args.verbose and self.seen and last_input is not None:
            shape = (min(self.args.batch, self.seen), 3, *last_input.shape[2:])
            pre, infer, post = clock.mean_ms(self.seen)
            LOGGER.info(
                f"Speed: {pre:.1f}ms preprocess, {infer:.1f}ms inference, {post:.1f}ms postprocess per image "
                f"at shape {shape}"
            )
        if self.args.save or self.args.save_txt or self.args.save_crop:
            LOGGER.info(f"Results saved to {colorstr('bold', self.save_dir)}{self._labels_note()}")

    def _labels_note(self) -> str:
        if not self.args.save_txt:
            return ""
        n = len(list(self.save_dir.glob("labels/*.txt")))
        return f"\n{n} label{'s' * (n > 1)} saved to {self.save_dir / 'labels'}"

    # ------------------------------------------------------------------------------------------
    # Outputs of one image
    # ------------------------------------------------------------------------------------------
    def write_results(self, i: int, p: Path, im: torch.Tensor, s: list[str]) -> str:
        """Log, plot, save (image/video/txt/crops) the i-th result of the batch; returns its log text."""
        batch = im if im.ndim == 4 else im[None]  # (B, 3, H, W)
        prefix, frame = self._frame_of(i, s[i])
        suffix = "" if self.dataset.mode == "image" else f"_{frame}"
        self.txt_path = self.save_dir / "labels" / f"{p.stem}{suffix}"
        result = self.results[i]
        result.save_dir = str(self.save_dir)
        height, width = batch.shape[2:]
        line = f"{prefix}{height:g}x{width:g} {result.verbose()}{result.speed['inference']:.1f}ms"
        self._write_outputs(result, batch[i], p, frame)
        return line

    def _frame_of(self, i: int, info: str) -> tuple[str, int | None]:
        """(log prefix, frame number): in-memory and live sources count batches, videos name the frame."""
        kind = self.source_type
        if kind.stream or kind.screenshot or kind.from_img or kind.tensor:
            return f"{i}: ", self.dataset.count
        found = re.search(r"frame (\d+)/", info)
        return "", int(found[1]) if found else None

    def _write_outputs(self, result: Results, model_input: torch.Tensor, p: Path, frame: int | None) -> None:
        """Everything the save/show flags ask for, for one result."""
        args = self.args
        if args.save or args.show:
            self.plotted_img = result.plot(
                line_width=args.line_width,
                boxes=args.show_boxes,
                conf=args.show_conf,
                labels=args.show_labels,
                im_gpu=None if args.retina_masks else model_input,
            )
        if args.save_txt:
            result.save_txt(f"{self.txt_path}.txt", save_conf=args.save_conf)
        if args.save_crop:
            result.save_crop(save_dir=self.save_dir / "crops", file_name=self.txt_path.stem)
        if args.show:
            self.show(str(p))
        if args.save:
            self.save_predicted_images(str(self.save_dir / p.name), frame)

    def save_predicted_images(self, save_path: str = "", frame: int | None = 0) -> None:
        """Write the annotated image as .jpg, or append it to `<name>.mp4` (mp4v) for video sources."""
        if self.dataset.mode not in {"stream", "video"}:
            cv2.imwrite(str(Path(save_path).with_suffix(".jpg")), self.plotted_img)
            return
        frames_dir = self._frames_dir(save_path) if self.args.save_frames else None
        writer = self.vid_writer.get(save_path) or self._open_video(save_path, frames_dir)
        writer.write(self.plotted_img)
        if frames_dir:
            cv2.imwrite(f"{frames_dir}{frame}.jpg", self.plotted_img)

    def _open_video(self, save_path: str, frames_dir: str | None) -> cv2.VideoWriter:
        """A new mp4v writer sized to the annotated frame, registered under save_path (frames_dir made too)."""
        if frames_dir:
            Path(frames_dir).mkdir(parents=True, exist_ok=True)
        height, width = self.plotted_img.shape[:2]
        writer = cv2.VideoWriter(
            filename=str(Path(save_path).with_suffix(".mp4")),
            fourcc=cv2.VideoWriter_fourcc(*"mp4v"),
            fps=self.dataset.fps if self.dataset.mode == "video" else 30,  # streams have no reliable rate
            frameSize=(width, height),
        )
        self.vid_writer[save_path] = writer
        return writer

    @staticmethod
    def _frames_dir(save_path: str) -> str:
        """`runs/.../clip.mp4` -> `runs/.../clip_frames/` (the name up to its first dot)."""
        return save_path.split(".", 1)[0] + "_frames/"

    def show(self, p: str = "") -> None:
        """Display the annotated image in a resizable window named after its source."""
        frame = self.plotted_img
        if p not in self.windows:
            self.windows.append(p)
            cv2.namedWindow(p, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(p, frame.shape[1], frame.shape[0])
        cv2.imshow(p, frame)
        cv2.waitKey(300 if self.dataset.mode == "image" else 1)  # images linger, video frames flow
