"""What inference writes for each image, TAO's files plus a COCO results file.

In ``results_dir``:

* ``images_annotated/<image>``: mask outlines with a light fill, boxes (``outline_width``),
  "phrase score" tags kept inside the picture, colours from ``color_map`` (class/phrase ->
  colour name, ``#rrggbb`` or ``[r, g, b]``); images under 512 px are drawn upscaled to a
  512 px long side (``writers/draw.py``), every other file keeps the original coordinates;
* ``labels/<image stem>.txt``: TAO's KITTI-style lines, ``Empty`` when nothing was kept;
* ``results.json``: a COCO results list (``COCO.loadRes`` reads it): per detection
  ``image_id``, ``file_name``, ``category_id``, ``category``, ``phrase``, ``bbox`` [x, y, w, h],
  ``score`` and ``segmentation`` (RLE) when the model has masks;
* ``results_index.json``: ``{"images": [...], "categories": [...]}`` describing those ids
  (OD: the class list, id = position; VG: one category per distinct expression), so the
  results are self-describing and ``COCO()`` can be built from the two files.

Image names keep their path relative to their source; with several sources each gets a
sub-folder named after it. A VG image prompted by several expressions gets one output per
expression (``<stem>_<n><ext>``).
"""

from __future__ import annotations

import io
import os
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor

from ..errors import SpecError
from ..metrics.distributed import gather_to_rank0
from ..model.results import Detections
from ..utils.atomic import atomic_write_bytes, atomic_write_json
from ..writers import detections_to_coco, draw_detections, write_coco_results, write_kitti

_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def normalise_color_map(color_map: dict[str, Any] | None, key: str = "inference.color_map") -> dict[str, str] | None:
    """Colours as strings PIL reads; ``[r, g, b]`` lists become ``#rrggbb``. Bad entries raise SpecError."""
    if not color_map:
        return None
    out, problems = {}, []
    for name, value in color_map.items():
        if isinstance(value, (list, tuple)):
            if len(value) != 3 or not all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in value):
                problems.append(f"{key}.{name}: {list(value)} is not a colour; use [r, g, b] with values 0..255")
                continue
            out[str(name)] = "#" + "".join(f"{int(round(v)):02x}" for v in value)
            continue
        try:
            ImageColor.getrgb(str(value))
        except ValueError:
            problems.append(f"{key}.{name}: '{value}' is not a colour; use a name (red), #rrggbb or [r, g, b]")
            continue
        out[str(name)] = str(value)
    if problems:
        raise SpecError(problems)
    return out


def safe_relative(name: str) -> str:
    """``name`` as a relative path that stays inside the output folder."""
    parts = [p for p in posixpath.normpath(name.replace("\\", "/")).split("/") if p not in ("", ".")]
    parts = ["_" if p == ".." else p for p in parts]
    return "/".join(parts) or "image"


class InferenceWriter:
    """Writes annotated images, KITTI labels and the COCO results of an inference run.

    Args:
        results_dir: output folder.
        categories: OD class list (category id = position); None for VG (one category per
            distinct expression, numbered in the order of the images' ids).
        color_map, outline_width: drawing (see the module docstring).
        draw: write ``images_annotated`` (off: labels and results only).

    In a multi-process run every process writes the pictures and labels of its own images;
    :meth:`close` gathers the results on rank 0, which writes ``results.json`` and
    ``results_index.json`` in image-id order, so they are the files one process writes.
    """

    def __init__(self, results_dir: str | os.PathLike, *, categories: list[str] | None = None,
                 color_map: dict[str, Any] | None = None, outline_width: int = 3, draw: bool = True):
        self.results_dir = Path(results_dir)
        self.categories = list(categories) if categories is not None else None
        self.color_map = normalise_color_map(color_map)
        self.outline_width = int(outline_width)
        self.draw = draw
        self.images: list[dict] = []      # per image: id, file_name, height, width (+ expression until close)
        self.results: list[dict] = []
        self.num_empty = 0

    @property
    def annotated_dir(self) -> Path:
        return self.results_dir / "images_annotated"

    @property
    def labels_dir(self) -> Path:
        return self.results_dir / "labels"

    def add(self, image: np.ndarray | Image.Image, name: str, detections: Detections, *,
            expression: str | None = None, image_id: int | None = None) -> int:
        """Write one image's outputs; returns its ``image_id`` in ``results.json`` (``image_id``:
        its position in the data, default: the number of images added before it)."""
        image_id = len(self.images) if image_id is None else int(image_id)
        rel = safe_relative(name)
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        width, height = pil.size
        self.images.append({"id": image_id, "file_name": rel, "height": height, "width": width,
                            "expression": expression or ""})
        stem, ext = os.path.splitext(rel)
        if self.draw:
            self._save_image(draw_detections(pil, detections, color_map=self.color_map,
                                             outline_width=self.outline_width), rel)
        write_kitti(detections, str(self.labels_dir / f"{stem}.txt"))
        self.num_empty += int(len(detections) == 0)
        # VG category ids are set in close(), once every image (of every process) is known.
        mapping = {label: label if self.categories is not None else -1 for label in detections.labels.tolist()}
        entries = detections_to_coco(image_id, detections, mapping, with_masks=detections.masks is not None)
        for entry, phrase in zip(entries, detections.phrases):
            category = self.categories[entry["category_id"]] if self.categories is not None else expression
            entry.update(file_name=rel, category=category or "", phrase=phrase)
        self.results.extend(entries)
        return image_id

    def _save_image(self, picture: Image.Image, rel: str) -> None:
        stem, ext = os.path.splitext(rel)
        fmt = _SAVE_FORMATS.get(ext.lower())
        if fmt is None:
            rel, fmt = stem + ".png", "PNG"
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        atomic_write_bytes(self.annotated_dir / rel, buffer.getvalue())

    def _merge(self) -> bool:
        """Every process's images and results on rank 0, in image-id order (False on other ranks)."""
        gathered = gather_to_rank0((self.images, self.results, self.num_empty))
        if gathered is None:
            return False
        self.images = sorted((i for images, _, _ in gathered for i in images), key=lambda i: i["id"])
        self.results = sorted((r for _, results, _ in gathered for r in results), key=lambda r: r["image_id"])
        self.num_empty = sum(n for _, _, n in gathered)
        return True

    def category_list(self) -> list[dict]:
        if self.categories is not None:
            return [{"id": i, "name": name} for i, name in enumerate(self.categories)]
        expressions: dict[str, int] = {}
        for image in self.images:
            expressions.setdefault(image["expression"], len(expressions))
        return [{"id": cid, "name": text} for text, cid in expressions.items()]

    def close(self) -> dict[str, Path]:
        """Write ``results.json`` and ``results_index.json`` (rank 0 of a multi-process run, after
        gathering every process's results; the other processes write neither); returns the paths."""
        index = self.results_dir / "results_index.json"
        paths = {"results": self.results_dir / "results.json", "index": index, "labels": self.labels_dir,
                 "images_annotated": self.annotated_dir}
        if not self._merge():
            return paths
        categories = self.category_list()
        if self.categories is None:  # VG: one category per distinct expression, numbered in image order
            ids = {c["name"]: c["id"] for c in categories}
            expression = {i["id"]: i["expression"] for i in self.images}
            for entry in self.results:
                entry["category_id"] = ids[expression[entry["image_id"]]]
        write_coco_results(paths["results"], self.results)
        images = [{k: v for k, v in i.items() if k != "expression"} for i in self.images]
        atomic_write_json(index, {"images": images, "categories": categories})
        return paths
