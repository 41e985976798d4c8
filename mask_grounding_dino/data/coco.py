"""COCO json (validation / test annotations): images, annotations with bbox xywh and
segmentation (polygons or RLE), categories.

TAO requires ``category_id`` contiguous from 0 (its validation loss indexes classes by id).
:func:`read_coco` checks that by default and points users with COCO's own numbering (1..90
with gaps) at ``mask_grounding_dino dataset convert coco2odvg``, which remaps the ids.

Extra annotation keys (``referring_expression``, ``sent_id``, ``empty``, ``tokens_positive``...)
are kept in :attr:`CocoAnnotation.extra`; extra image keys (``caption``...) in
:attr:`CocoImage` are not modelled and stay available through :func:`read_coco_json`.
"""

from __future__ import annotations

from typing import Any

from . import fileio
from ..errors import DataError
from .records import CocoAnnotation, CocoDataset, CocoImage, as_box, as_int, as_str, require

#: The annotation keys that have a field in :class:`CocoAnnotation`; others go to ``extra``.
_ANN_FIELDS = {"id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd"}
#: The conversion command named in the non-contiguous id message.
CONVERT_HINT = "mask_grounding_dino dataset convert coco2odvg"


def read_coco_json(path: str) -> dict:
    """The raw COCO dict, checked to have ``images``, ``annotations`` and ``categories`` lists."""
    return check_coco_dict(fileio.read_json(path), fileio.redact(path))


def check_coco_dict(data: Any, source: str) -> dict:
    """``data`` if it is a COCO object (``images``, ``annotations``, ``categories`` lists)."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: a COCO file must be a JSON object with 'images', 'annotations' and "
                        f"'categories', got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(require(data, key, source), list):
            raise DataError(f"{source}: '{key}' must be a list, got {type(data[key]).__name__}")
    return data


def read_coco(path: str, require_contiguous: bool = True, strict: bool = True) -> CocoDataset:
    """Read a COCO json (local path or URL) into a :class:`CocoDataset`.

    Args:
        require_contiguous: category ids must be exactly ``0..K-1`` (TAO's rule).
        strict: also refuse duplicate image / annotation / category ids and annotations whose
            ``image_id`` or ``category_id`` is not declared. The validator reads with
            ``strict=False`` and reports these itself.
    Raises:
        DataError naming the file, the entry (``annotations[12]``) and the problem.
    """
    return coco_from_dict(read_coco_json(path), fileio.redact(path), require_contiguous, strict)


def coco_from_dict(data: dict, source: str = "", require_contiguous: bool = True,
                   strict: bool = True) -> CocoDataset:
    """:func:`read_coco` on an already loaded dict (``source`` names it in messages)."""
    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        at = f"{source}: categories[{i}]"
        cat_id = as_int(require(cat, "id", at), f"{at}.id")
        if cat_id in categories:
            raise DataError(f"{at}: category id {cat_id} is declared twice "
                            f"({categories[cat_id]!r} and {cat.get('name')!r})")
        categories[cat_id] = as_str(require(cat, "name", at), f"{at}.name")
    if require_contiguous:
        message = contiguity_problem(list(categories), source)
        if message:
            raise DataError(f"{source}: {message}")
    images = [_image(img, f"{source}: images[{i}]") for i, img in enumerate(data["images"])]
    annotations = [_annotation(ann, f"{source}: annotations[{i}]") for i, ann in enumerate(data["annotations"])]
    dataset = CocoDataset(images=images, annotations=annotations, categories=dict(sorted(categories.items())),
                          source=source)
    if strict:
        problems = reference_problems(dataset)
        if problems:
            lines = [f"{source}: {where}: {msg}" for _, where, msg in problems[:5]]
            if len(problems) > 5:
                lines.append(f"{source}: ... and {len(problems) - 5} more problems like these")
            raise DataError(lines)
    return dataset


def contiguity_problem(category_ids: list[int], source: str = "") -> str | None:
    """A message when ``category_ids`` are not exactly ``0..K-1``, else ``None``."""
    ids = sorted(category_ids)
    expected = list(range(len(ids)))
    if ids == expected:
        return None
    missing = sorted(set(expected) - set(ids))
    unexpected = sorted(set(ids) - set(expected))
    return (f"category ids {_ids(ids)} are not contiguous from 0 (TAO needs 0..{len(ids) - 1}; "
            f"missing {_ids(missing)}, unexpected {_ids(unexpected)}). Remap them with "
            f"`{CONVERT_HINT} {source or '<this file>'}`, which writes an ODVG jsonl, its label map and a COCO json "
            "with ids 0..K-1")


def reference_problems(dataset: CocoDataset) -> list[tuple[str, str, str]]:
    """``(kind, where, message)`` for duplicate ids and dangling image / category references."""
    problems: list[tuple[str, str, str]] = []
    seen_images: set[int] = set()
    for i, img in enumerate(dataset.images):
        if img.id in seen_images:
            problems.append(("duplicate_id", f"images[{i}]", f"image id {img.id} is used twice"))
        seen_images.add(img.id)
    seen_anns: set[int] = set()
    for i, ann in enumerate(dataset.annotations):
        where = f"annotations[{i}]"
        if ann.id in seen_anns:
            problems.append(("duplicate_id", where, f"annotation id {ann.id} is used twice"))
        seen_anns.add(ann.id)
        if ann.image_id not in seen_images:
            problems.append(("unknown_image", where, f"image_id {ann.image_id} is not in 'images'"))
        if ann.category_id not in dataset.categories:
            problems.append(("unknown_label", where, f"category_id {ann.category_id} is not in 'categories' "
                                                     f"(declared: {_ids(sorted(dataset.categories))})"))
    return problems


def _image(img: Any, at: str) -> CocoImage:
    return CocoImage(
        id=as_int(require(img, "id", at), f"{at}.id"),
        file_name=as_str(require(img, "file_name", at), f"{at}.file_name"),
        height=as_int(require(img, "height", at), f"{at}.height", minimum=1),
        width=as_int(require(img, "width", at), f"{at}.width", minimum=1),
    )


def _annotation(ann: Any, at: str) -> CocoAnnotation:
    area = ann.get("area", 0.0) if isinstance(ann, dict) else 0.0
    iscrowd = ann.get("iscrowd", 0) if isinstance(ann, dict) else 0
    segmentation = ann.get("segmentation") if isinstance(ann, dict) else None
    return CocoAnnotation(
        id=as_int(require(ann, "id", at), f"{at}.id"),
        image_id=as_int(require(ann, "image_id", at), f"{at}.image_id"),
        category_id=as_int(require(ann, "category_id", at), f"{at}.category_id"),
        bbox=as_box(require(ann, "bbox", at), f"{at}.bbox", layout="[x, y, width, height]"),
        segmentation=segmentation if segmentation not in ([], {}) else None,
        area=float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else 0.0,
        iscrowd=as_int(iscrowd, f"{at}.iscrowd") if iscrowd is not None else 0,
        extra={k: v for k, v in ann.items() if k not in _ANN_FIELDS},
    )


def coco_to_dict(dataset: CocoDataset, images_extra: dict[int, dict] | None = None) -> dict:
    """The COCO json object of ``dataset`` (``images_extra``: more keys per image id)."""
    images_extra = images_extra or {}
    return {
        "images": [{"id": img.id, "file_name": img.file_name, "height": img.height, "width": img.width,
                    **images_extra.get(img.id, {})} for img in dataset.images],
        "annotations": [{"id": ann.id, "image_id": ann.image_id, "category_id": ann.category_id,
                         "bbox": list(ann.bbox), "area": ann.area, "iscrowd": ann.iscrowd,
                         **({"segmentation": ann.segmentation} if ann.segmentation is not None else {}),
                         **ann.extra} for ann in dataset.annotations],
        "categories": [{"id": cid, "name": name} for cid, name in sorted(dataset.categories.items())],
    }


def _ids(ids: list[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return f"[{shown}{f', ... ({len(ids)} in all)' if len(ids) > limit else ''}]"
