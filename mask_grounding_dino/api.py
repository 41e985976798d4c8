"""Python API: load a model once, predict on many images.

    from mask_grounding_dino import Predictor        # (or mask_grounding_dino.api)

    predictor = Predictor.from_checkpoint("model.pth", conf_threshold=0.3)
    dets = predictor.predict(["a.jpg", pil_image, rgb_array], ["person", "forklift"])     # OD
    dets = predictor.predict("a.jpg", "the man in the red vest")                          # VG
    predictor.draw("a.jpg", dets[0]).save("a_annotated.jpg")

``Predictor.from_onnx("model.onnx")`` runs an exported model with onnxruntime behind the
same pre- and post-processing. Results are :class:`~mask_grounding_dino.model.results.Detections`
(boxes xyxy in original pixels, scores, labels = index in the class list, phrases, masks
at the original size, ``no_target``).

Prompts (``mode`` is inferred when not given):

* OD, one class list shared by every image: a list of names, a ``"a . b . c"`` string or a
  label map path (``.txt`` one name per line, ``.json``). Lists longer than the text
  encoder's 256 tokens are split and merged automatically (the image side runs once).
* VG, referring expressions: one string for every image, or a list with one per image
  (``mode="VG"`` is needed for a list, which otherwise means a class list).

Settings come from ``spec`` (an experiment spec path, dict or ``ExperimentConfig``: its
``inference`` thresholds and input size, ``dataset.augmentation`` resize and
normalisation, ``model`` section for checkpoints that do not record their architecture)
and keyword options, which win: ``conf_threshold``, ``nms_threshold``, ``text_threshold``,
``ioi_threshold``, ``num_select``, ``input_size`` ((height, width) for an exact resize, None
for TAO's aspect-preserving resize), ``batch_size``, ``max_chunk_phrases``.

Process settings: the model's forward passes run with subnormal floats flushed to zero (on the
CPU they are slow and carry nothing, ``utils/cpu.py``); the previous setting is restored after
each call, so the caller's own float math, warning filters and logging are left as they were.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import ExperimentConfig, load_spec
from .data import fileio
from .data.captions import build_expression_caption
from .data.inference_inputs import parse_captions
from .deploy.detector import Detector, Thresholds
from .deploy.loading import is_onnx_path, open_backend
from .deploy.preprocess import ImageInput, ImagePreprocessor, load_rgb
from .deploy.results_writer import normalise_color_map
from .deploy.tensorrt import is_engine_path
from .errors import UserError
from .model.checkpoint.locate import locate_checkpoint
from .quantize.loading import read_model_file
from .model.results import Detections
from .writers import draw_detections

_UNSET: Any = object()
_THRESHOLD_KEYS = ("conf_threshold", "nms_threshold", "text_threshold", "ioi_threshold")
_OPTIONS = set(_THRESHOLD_KEYS) | {"num_select", "input_size", "batch_size", "max_chunk_phrases"}


def _as_spec(spec) -> ExperimentConfig:
    if spec is None:
        return ExperimentConfig()
    if isinstance(spec, ExperimentConfig):
        return spec
    if isinstance(spec, dict):
        return load_spec(base=spec)
    return load_spec(os.fspath(spec))


class Predictor:
    """A loaded model plus TAO's pre- and post-processing (see the module docstring).

    Build it with :meth:`from_checkpoint` or :meth:`from_onnx`; the constructor takes the
    parts (a backend from ``deploy.open_backend``, a :class:`Thresholds`, an
    :class:`ImagePreprocessor`).
    """

    def __init__(self, backend, *, thresholds: Thresholds = Thresholds(), preprocessor: ImagePreprocessor | None = None,
                 batch_size: int = 4, max_chunk_phrases: int | None = None):
        self.backend = backend
        self.detector = Detector(backend, thresholds, max_chunk_phrases=max_chunk_phrases)
        self.preprocessor = preprocessor or ImagePreprocessor(
            input_size=backend.fixed_input_size, fixed_padding=backend.supports_padding,
            size_divisibility=32 if backend.supports_padding else 1)
        self.batch_size = max(1, int(batch_size))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None, spec=None,
                        **options) -> "Predictor":
        """A model file: a checkpoint (ours, TAO's, the original release, a Hugging Face folder or hub
        id such as ``IDEA-Research/grounding-dino-tiny``) or an ``.onnx`` file. ``device``: default the
        first GPU when there is one, else the CPU.
        Without ``spec``, a checkpoint written by our trainer supplies the spec it was trained
        with (its resize, normalisation and inference thresholds); other files use the defaults."""
        raw = None
        if not (is_onnx_path(path) or is_engine_path(path)):
            path = locate_checkpoint(path)       # a hub id becomes its cached folder; a missing file fails here
            if spec is None:
                raw = read_model_file(path)      # read once: its spec here, its weights in open_backend
        cfg = _as_spec(spec if spec is not None else (raw.metadata.get("spec") if raw is not None else None))
        backend = open_backend(path, model_section=cfg.model if spec is not None else None, device=device,
                               key="checkpoint", text_encoder_type=cfg.model.text_encoder_type, raw=raw)
        return cls._build(backend, cfg, options)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: str | torch.device | None = None, spec=None,
                  **options) -> "Predictor":
        """An exported ``.onnx`` file run with onnxruntime (CUDA provider when available and asked for)."""
        if not is_onnx_path(path):
            raise UserError(f"from_onnx: '{os.fspath(path)}' is not an .onnx file; use from_checkpoint for "
                            "checkpoints")
        cfg = _as_spec(spec)
        backend = open_backend(path, device=device or "cpu", key="onnx file",
                               text_encoder_type=cfg.model.text_encoder_type)
        return cls._build(backend, cfg, options)

    @classmethod
    def _build(cls, backend, cfg: ExperimentConfig, options: dict) -> "Predictor":
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise UserError(f"Predictor: unknown option(s) {unknown}; allowed: {sorted(_OPTIONS)}")
        section = cfg.inference
        thresholds = Thresholds.from_config(section, cfg.model)
        changes = {k: options[k] for k in _THRESHOLD_KEYS + ("num_select",) if k in options}
        thresholds = Thresholds(**{**thresholds.as_dict(), **changes})
        size = options.get("input_size", _UNSET)
        if size is _UNSET:
            size = ((section.input_height, section.input_width)
                    if section.input_width and section.input_height else None)
        fixed = backend.fixed_input_size
        if fixed is not None:
            if "input_size" in options and options["input_size"] is not None and tuple(options["input_size"]) != fixed:
                raise UserError(f"input_size {tuple(options['input_size'])} differs from the ONNX graph's fixed "
                                f"input {fixed}; leave input_size out")
            size = fixed
        if size is not None:
            size = (int(size[0]), int(size[1]))
        preprocessor = ImagePreprocessor.from_config(cfg.dataset.augmentation, size,
                                                     allow_padding=backend.supports_padding)
        batch_size = options.get("batch_size") or (section.batch_size if section.batch_size > 0
                                                   else cfg.dataset.batch_size)
        return cls(backend, thresholds=thresholds, preprocessor=preprocessor, batch_size=batch_size,
                   max_chunk_phrases=options.get("max_chunk_phrases"))

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def thresholds(self) -> Thresholds:
        return self.detector.thresholds

    # ------------------------------------------------------------------ prediction
    def predict(self, images: ImageInput | Sequence[ImageInput], prompts: str | Sequence[str], *,
                mode: str | None = None, batch_size: int | None = None) -> list[Detections]:
        """Detections for each image (see the module docstring for ``prompts`` and ``mode``)."""
        items = [images] if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)) else list(images)
        if not items:
            return []
        mode = self._mode(prompts, mode)
        arrays = [load_rgb(image, f"images[{i}]") for i, image in enumerate(items)]
        if mode == "OD":
            classes = parse_captions(prompts, "prompts", shell_hint=False)
        else:
            # Cleaned as the data pipeline cleans inference.jsonl expressions (lower case, " ." ending).
            captions = [build_expression_caption(e, []) for e in self._expressions(prompts, len(arrays))]
        out: list[Detections | None] = [None] * len(arrays)
        for rows in self._batches(arrays, batch_size or self.batch_size):
            batch = self.preprocessor([arrays[i] for i in rows])
            if mode == "OD":
                dets = self.detector.detect_classes(batch, classes)
            else:
                dets = self.detector.detect_expressions(batch, [captions[i].caption for i in rows],
                                                        [captions[i].phrases for i in rows])
            for i, det in zip(rows, dets):
                out[i] = det.to("cpu")
        return out  # type: ignore[return-value]

    @staticmethod
    def _mode(prompts, mode: str | None) -> str:
        if mode is not None:
            if str(mode).upper() not in ("OD", "VG"):
                raise UserError(f"mode: '{mode}' is not allowed; use OD (class list) or VG (referring expression)")
            return str(mode).upper()
        if isinstance(prompts, str):
            text = prompts.strip().rstrip(".").strip()
            is_label_map = text.lower().endswith((".txt", ".json")) and not any(c.isspace() for c in text)
            return "OD" if is_label_map or "." in text else "VG"
        if isinstance(prompts, (list, tuple)):
            return "OD"
        raise UserError(f"prompts: expected a class list, a 'a . b' string or an expression, got "
                        f"{type(prompts).__name__}")

    @staticmethod
    def _expressions(prompts, count: int) -> list[str]:
        if isinstance(prompts, str):
            return [prompts] * count
        items = list(prompts)
        if len(items) != count or not all(isinstance(p, str) and p.strip() for p in items):
            raise UserError(f"prompts: VG needs one non-empty expression per image ({count}) or a single string, "
                            f"got {len(items)}")
        return items

    def _batches(self, arrays: list[np.ndarray], size: int) -> list[list[int]]:
        """Row indices per batch. Backends that cannot pad get images of one resized size per batch."""
        size = max(1, int(size))
        if self.backend.supports_padding:
            groups = [list(range(len(arrays)))]
        else:
            by_size: dict[tuple[int, int], list[int]] = {}
            for i, arr in enumerate(arrays):
                by_size.setdefault(self.preprocessor.resized_size(*arr.shape[:2]), []).append(i)
            groups = list(by_size.values())
        return [g[s:s + size] for g in groups for s in range(0, len(g), size)]

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def draw(image: ImageInput, detections: Detections, *, color_map: dict | None = None,
             outline_width: int = 3, min_size: int = 512) -> Image.Image:
        """The image with ``detections`` drawn as inference draws them (mask outlines with a light
        fill, boxes, "phrase score" tags); a picture whose long side is under ``min_size`` is drawn
        upscaled to it (0: the original size)."""
        picture = Image.fromarray(load_rgb(image))
        return draw_detections(picture, detections, color_map=normalise_color_map(color_map, "color_map"),
                               outline_width=outline_width, min_size=min_size)
