"""Inference engine: read a source batch by batch, run the model, turn outputs into `Results`, save them.

Sources: an image path, a folder, a glob, a list of paths, a .txt file listing paths, a video file,
a numpy BGR array, a PIL image, a list of those, or a (B, 3, H, W) float tensor in 0-1.
Models: anything `AutoBackend` loads (nn.Module, .pt, .torchscript, .onnx).

    yolo predict model=rtdetr-l-FocalModulation.pt source=path/to/images imgsz=640
    RTDETR("best.pt").predict("bus.jpg", conf=0.5, save=True)
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

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

STREAM_WARNING = """
WARNING ⚠️ inference results will accumulate in RAM unless `stream=True` is passed, which may run out of memory
for large sources or long videos. Iterate over a generator instead:

    for result in model(source=..., stream=True):
        boxes = result.boxes  # Boxes object with xyxy, conf, cls
"""


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
        self.save_dir = get_save_dir(self.args)
        if self.args.conf is None:
            self.args.conf = 0.25  # predict's default; val uses 0.001
        self.done_warmup = False
        if self.args.show:
            self.args.show = check_imshow(warn=True)

        # Filled in by setup_model / setup_source.
        self.model: AutoBackend | None = None
        self.data = self.args.data
        self.imgsz: list[int] | None = None
        self.device: torch.device | None = None
        self.dataset = None
        self.vid_writer: dict[str, cv2.VideoWriter] = {}
        self.plotted_img: np.ndarray | None = None
        self.source_type = None
        self.seen = 0
        self.windows: list[str] = []
        self.batch: tuple[list[str], Any, list[str]] | None = None
        self.results: list[Results] | None = None
        self.transforms = None
        self.txt_path: Path | None = None
        self._lock = threading.Lock()  # one predictor may be shared between threads

    def preprocess(self, im: torch.Tensor | list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images [(h, w, 3) x B] or an RGB (B, 3, H, W) tensor -> model input (B, 3, H, W) in 0-1."""
        not_tensor = not isinstance(im, torch.Tensor)
        if not_tensor:
            im = np.stack(self.pre_transform(im))
            im = np.ascontiguousarray(im[..., ::-1].transpose((0, 3, 1, 2)))  # BGR->RGB, BHWC->BCHW
            im = torch.from_numpy(im)
        im = im.to(self.device)
        im = im.half() if self.model.fp16 else im.float()
        if not_tensor:
            im /= 255
        return im

    def inference(self, im: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        visualize = (
            increment_path(self.save_dir / Path(self.batch[0][0]).stem, mkdir=True)
            if self.args.visualize and not self.source_type.tensor
            else False
        )
        return self.model(im, augment=self.args.augment, visualize=visualize, embed=self.args.embed, *args, **kwargs)

    def pre_transform(self, im: list[np.ndarray]) -> list[np.ndarray]:
        """Letterbox each image to imgsz (minimal padding when all images share a shape)."""
        same_shapes = len({x.shape for x in im}) == 1
        letterbox = LetterBox(self.imgsz, auto=same_shapes and self.model.pt, stride=self.model.stride)
        return [letterbox(image=x) for x in im]

    def postprocess(self, preds: torch.Tensor, img: torch.Tensor, orig_imgs: list[np.ndarray]) -> list[Results]:
        return preds

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
        if stream:
            return self.stream_inference(source, model, *args, **kwargs)
        return list(self.stream_inference(source, model, *args, **kwargs))

    def predict_cli(self, source: Any = None, model: Any = None) -> None:
        """CLI entry: consume the generator so that nothing accumulates in memory."""
        for _ in self.stream_inference(source, model):
            pass

    def setup_source(self, source: Any) -> None:
        self.imgsz = check_imgsz(self.args.imgsz, stride=self.model.stride, min_dim=2)
        if self.model.static_hw and list(self.imgsz) != list(self.model.imgsz):
            # An exported RT-DETR graph only accepts the height and width it was exported at.
            LOGGER.warning(
                f"WARNING ⚠️ imgsz={self.imgsz} differs from the exported model's fixed input size "
                f"{self.model.imgsz}; using imgsz={self.model.imgsz}"
            )
            self.imgsz = list(self.model.imgsz)
        self.dataset = load_inference_source(
            source=source,
            batch=self.args.batch,
            vid_stride=self.args.vid_stride,
            buffer=self.args.stream_buffer,
        )
        self.source_type = self.dataset.source_type
        if not getattr(self, "stream", True) and (
            len(self.dataset) > 1000 or any(getattr(self.dataset, "video_flag", [False]))
        ):
            LOGGER.warning(STREAM_WARNING)
        self.vid_writer = {}

    @smart_inference_mode()
    def stream_inference(self, source: Any = None, model: Any = None, *args, **kwargs) -> Iterator[Results]:
        """Generator over Results; only the current batch is held in memory."""
        if self.args.verbose:
            LOGGER.info("")
        if not self.model:
            self.setup_model(model)

        with self._lock:
            self.setup_source(source if source is not None else self.args.source)
            if self.args.save or self.args.save_txt:
                (self.save_dir / "labels" if self.args.save_txt else self.save_dir).mkdir(parents=True, exist_ok=True)
            if not self.done_warmup:
                self.model.warmup(imgsz=(1 if self.model.pt else self.dataset.bs, 3, *self.imgsz))
                self.done_warmup = True

            self.seen, self.windows, self.batch = 0, [], None
            profilers = tuple(ops.Profile(device=self.device) for _ in range(3))  # preprocess, inference, postprocess
            im = None
            self.run_callbacks("on_predict_start")
            for self.batch in self.dataset:
                self.run_callbacks("on_predict_batch_start")
                paths, im0s, s = self.batch

                with profilers[0]:
                    im = self.preprocess(im0s)
                with profilers[1]:
                    preds = self.inference(im, *args, **kwargs)
                    if self.args.embed:
                        yield from [preds] if isinstance(preds, torch.Tensor) else preds
                        continue
                with profilers[2]:
                    self.results = self.postprocess(preds, im, im0s)
                self.run_callbacks("on_predict_postprocess_end")

                n = len(im0s)
                s = list(s)
                for i in range(n):
                    self.seen += 1
                    self.results[i].speed = {
                        "preprocess": profilers[0].dt * 1e3 / n,
                        "inference": profilers[1].dt * 1e3 / n,
                        "postprocess": profilers[2].dt * 1e3 / n,
                    }
                    if self.args.verbose or self.args.save or self.args.save_txt or self.args.show:
                        s[i] += self.write_results(i, Path(paths[i]), im, s)

                if self.args.verbose:
                    LOGGER.info("\n".join(s))
                self.run_callbacks("on_predict_batch_end")
                yield from self.results

        for w in self.vid_writer.values():
            w.release()
        self.vid_writer = {}

        if self.args.verbose and self.seen and im is not None:
            t = tuple(x.t / self.seen * 1e3 for x in profilers)
            LOGGER.info(
                f"Speed: %.1fms preprocess, %.1fms inference, %.1fms postprocess per image at shape "
                f"{(min(self.args.batch, self.seen), 3, *im.shape[2:])}" % t
            )
        if self.args.save or self.args.save_txt or self.args.save_crop:
            nl = len(list(self.save_dir.glob("labels/*.txt")))
            s = f"\n{nl} label{'s' * (nl > 1)} saved to {self.save_dir / 'labels'}" if self.args.save_txt else ""
            LOGGER.info(f"Results saved to {colorstr('bold', self.save_dir)}{s}")
        self.run_callbacks("on_predict_end")

    def setup_model(self, model: Any, verbose: bool = True) -> None:
        """Wrap `model` (or args.model) in AutoBackend on the requested device and switch to eval."""
        self.model = AutoBackend(
            weights=model or self.args.model,
            device=select_device(self.args.device, verbose=verbose),
            dnn=self.args.dnn,
            data=self.args.data,
            fp16=self.args.half,
            batch=self.args.batch,
            fuse=True,
            verbose=verbose,
        )
        self.device = self.model.device
        self.args.half = self.model.fp16
        self.model.eval()

    def write_results(self, i: int, p: Path, im: torch.Tensor, s: list[str]) -> str:
        """Log, plot, save (image/video/txt/crops) the i-th result of the batch; returns its log text."""
        string = ""
        if len(im.shape) == 3:
            im = im[None]
        if self.source_type.stream or self.source_type.from_img or self.source_type.tensor:
            string += f"{i}: "
            frame = self.dataset.count
        else:
            match = re.search(r"frame (\d+)/", s[i])
            frame = int(match[1]) if match else None
        self.txt_path = self.save_dir / "labels" / (p.stem + ("" if self.dataset.mode == "image" else f"_{frame}"))
        string += "{:g}x{:g} ".format(*im.shape[2:])
        result = self.results[i]
        result.save_dir = str(self.save_dir)
        string += f"{result.verbose()}{result.speed['inference']:.1f}ms"

        if self.args.save or self.args.show:
            self.plotted_img = result.plot(
                line_width=self.args.line_width,
                boxes=self.args.show_boxes,
                conf=self.args.show_conf,
                labels=self.args.show_labels,
                im_gpu=None if self.args.retina_masks else im[i],
            )
        if self.args.save_txt:
            result.save_txt(f"{self.txt_path}.txt", save_conf=self.args.save_conf)
        if self.args.save_crop:
            result.save_crop(save_dir=self.save_dir / "crops", file_name=self.txt_path.stem)
        if self.args.show:
            self.show(str(p))
        if self.args.save:
            self.save_predicted_images(str(self.save_dir / p.name), frame)
        return string

    def save_predicted_images(self, save_path: str = "", frame: int | None = 0) -> None:
        """Write the annotated image as .jpg, or append it to `<name>.mp4` (mp4v) for video sources."""
        im = self.plotted_img
        if self.dataset.mode in {"stream", "video"}:
            fps = self.dataset.fps if self.dataset.mode == "video" else 30
            frames_path = f"{save_path.split('.', 1)[0]}_frames/"
            if save_path not in self.vid_writer:
                if self.args.save_frames:
                    Path(frames_path).mkdir(parents=True, exist_ok=True)
                self.vid_writer[save_path] = cv2.VideoWriter(
                    filename=str(Path(save_path).with_suffix(".mp4")),
                    fourcc=cv2.VideoWriter_fourcc(*"mp4v"),
                    fps=fps,
                    frameSize=(im.shape[1], im.shape[0]),
                )
            self.vid_writer[save_path].write(im)
            if self.args.save_frames:
                cv2.imwrite(f"{frames_path}{frame}.jpg", im)
        else:
            cv2.imwrite(str(Path(save_path).with_suffix(".jpg")), im)

    def show(self, p: str = "") -> None:
        im = self.plotted_img
        if p not in self.windows:
            self.windows.append(p)
            cv2.namedWindow(p, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(p, im.shape[1], im.shape[0])
        cv2.imshow(p, im)
        cv2.waitKey(300 if self.dataset.mode == "image" else 1)
