"""The per-format validators (ODVG, COCO, inference jsonl, label maps, caption lists)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ... import fileio
from ....errors import DataError
from ...coco import check_coco_dict, coco_from_dict, contiguity_problem, read_coco_json, reference_problems
from ...inference_inputs import parse_captions
from ...label_map import label_map_problems, read_label_map
from ...odvg import parse_odvg_record
from ...records import DetectionRecord, LabelMap, as_box, as_int, as_str, require
from ...sources import ImageSource, open_image_source
from .checks import ImageChecker, TextChecker, check_box_xyxy, check_instance_mask
from .report import Report, SourceStats


@dataclass
class Options:
    """has_mask: instances must carry masks; sample: images decoded per source (sizes checked);
    check_decode: decode every image; skip_images: no image checks; cache_dir: archive cache."""

    has_mask: bool = True
    sample: int = 16
    check_decode: bool = False
    skip_images: bool = False
    cache_dir: str | None = None


class Validator:
    """Validates data sources into one :class:`Report`."""

    def __init__(self, report: Report, text: TextChecker | None, options: Options):
        self.report, self.text, self.options = report, text, options
        self._sources: dict[str, ImageSource | None] = {}

    # -- image sources
    def image_checker(self, image_dir: str | None, where: str) -> ImageChecker | None:
        if not image_dir or self.options.skip_images:
            return None
        if image_dir not in self._sources:
            try:
                self._sources[image_dir] = open_image_source(image_dir, self.options.cache_dir)
            except DataError as exc:
                self.report.add("missing_file", where, str(exc))
                self._sources[image_dir] = None
        source = self._sources[image_dir]
        if source is None:
            return None
        return ImageChecker(source, self.report, self.options.sample, self.options.check_decode)

    def _label_map(self, path: str | None, where: str) -> LabelMap | None:
        if not path:
            return None
        try:
            label_map = read_label_map(path)
        except DataError as exc:
            self.report.add("missing_file" if "not found" in str(exc) else "bad_record", where, str(exc))
            return None
        for kind, message in label_map_problems(label_map):
            self.report.add(kind, fileio.redact(path), message)
        if self.text:
            self.text.add(" . ".join(label_map.values()) + " .", fileio.redact(path),
                          "prompt of all class names")
        return label_map

    # -- formats
    def odvg(self, json_file: str, image_dir: str | None = None, label_map_path: str | None = None) -> None:
        shown = fileio.redact(json_file)
        stats = SourceStats(shown, "odvg", fileio.redact(image_dir or ""))
        self.report.sources.append(stats)
        label_map = self._label_map(label_map_path, shown)
        images = self.image_checker(image_dir, shown)
        det_ids: dict[Any, str] = {}
        warned_no_map = False
        try:
            for line, text in fileio.iter_lines(json_file):
                if not text.strip():
                    continue
                where = f"{shown}:{line}"
                try:
                    record = parse_odvg_record(json.loads(text), shown, line)
                except json.JSONDecodeError as exc:
                    self.report.add("bad_record", where, f"invalid JSON ({exc.msg} at column {exc.colno})")
                    continue
                except DataError as exc:
                    self.report.add("bad_record", where, str(exc).split(f"line {line}: ", 1)[-1])
                    continue
                stats.records += 1
                stats.images.add(record.file_name)
                if images:
                    images.check(record.file_name, where, record.height, record.width)
                if isinstance(record, DetectionRecord):
                    if label_map is None and not warned_no_map and not label_map_path:
                        warned_no_map = True
                        self.report.add("no_label_map", where, "detection records need a label map "
                                        "(--label-map, or label_map in the spec's train_data_sources)")
                    self._detection(record, where, label_map, stats, det_ids)
                else:
                    self._grounding(record, where, stats)
        except DataError as exc:
            self.report.add("missing_file" if "not found" in str(exc) else "bad_record", shown, str(exc))
        if images:
            images.finish()

    def _detection(self, record: DetectionRecord, where: str, label_map: LabelMap | None, stats: SourceStats,
                   det_ids: dict) -> None:
        key = record.image_id if record.image_id is not None else record.file_name
        if key in det_ids:
            self.report.add("duplicate_image_record", where, f"image {key!r} already has a detection record at "
                                                             f"{det_ids[key]}")
        else:
            det_ids[key] = where
        if not record.instances:
            stats.empty_records += 1
        for i, inst in enumerate(record.instances):
            at = where
            stats.instances += 1
            if label_map is not None:
                name = label_map.get(inst.label)
                if name is None:
                    self.report.add("unknown_label", at, f"instances[{i}].label {inst.label} is not in the label map "
                                                         f"(ids {min(label_map)}..{max(label_map)})")
                elif inst.category and inst.category.strip().lower() != name.strip().lower():
                    self.report.add("category_mismatch", at, f"instances[{i}] has category {inst.category!r} but "
                                                             f"label {inst.label} is {name!r} in the label map")
            check_box_xyxy(self.report, inst.bbox, record.height, record.width, f"{at}: instances[{i}]")
            check_instance_mask(self.report, inst.mask, record.height, record.width, f"{at}: instances[{i}].mask",
                                self.options.has_mask)

    def _grounding(self, record, where: str, stats: SourceStats) -> None:
        if self.text:
            self.text.add(record.text, where, "expression" if record.expression is not None else "caption")
        if record.empty and record.regions:
            self.report.add("empty_mismatch", where, f"'empty' is true but there are {len(record.regions)} regions")
        elif not record.regions and not record.empty:
            stats.empty_records += 1
            self.report.add("empty_mismatch", where, "no regions; mark a no-target sample with \"empty\": true")
        for i, reg in enumerate(record.regions):
            stats.instances += 1
            check_box_xyxy(self.report, reg.bbox, record.height, record.width, f"{where}: regions[{i}]")
            check_instance_mask(self.report, reg.mask, record.height, record.width, f"{where}: regions[{i}].mask",
                                self.options.has_mask)

    def coco(self, json_file: str, image_dir: str | None = None, label_map_path: str | None = None,
             raw: dict | None = None) -> None:
        """``raw``: the file's JSON when the caller has already loaded it."""
        shown = fileio.redact(json_file)
        stats = SourceStats(shown, "coco", fileio.redact(image_dir or ""))
        self.report.sources.append(stats)
        label_map = self._label_map(label_map_path, shown)
        try:
            raw = check_coco_dict(raw, shown) if raw is not None else read_coco_json(json_file)
            dataset = coco_from_dict(raw, shown, require_contiguous=False, strict=False)
        except DataError as exc:
            self.report.add("missing_file" if "not found" in str(exc) else "bad_record", shown, str(exc))
            return
        message = contiguity_problem(list(dataset.categories), shown)
        if message:
            self.report.add("non_contiguous_ids", f"{shown}: categories", message)
        for kind, where, msg in reference_problems(dataset):
            self.report.add(kind, f"{shown}: {where}", msg)
        for kind, msg in label_map_problems(dataset.categories):
            if kind == "duplicate_class_name":
                self.report.add(kind, f"{shown}: categories", msg)
        if label_map is not None:
            for cid, name in dataset.categories.items():
                if cid in label_map and label_map[cid].strip().lower() != name.strip().lower():
                    self.report.add("category_mismatch", f"{shown}: categories",
                                    f"category {cid} is {name!r} here but {label_map[cid]!r} in the label map")
        if self.text and dataset.categories:
            self.text.add(" . ".join(dataset.categories.values()) + " .", f"{shown}: categories",
                          "evaluation prompt of all category names")
        images = self.image_checker(image_dir, shown)
        sizes: dict[int, tuple[int, int]] = {}
        for i, img in enumerate(dataset.images):
            stats.images.add(img.file_name)
            sizes[img.id] = (img.height, img.width)
            if images:
                images.check(img.file_name, f"{shown}: images[{i}] (id {img.id})", img.height, img.width)
        stats.records = len(dataset.images)
        for i, ann in enumerate(dataset.annotations):
            where = f"{shown}: annotations[{i}] (id {ann.id})"
            expression = ann.extra.get("referring_expression")
            if self.text and isinstance(expression, str) and expression:
                self.text.add(expression, where, "referring_expression")
            if ann.extra.get("empty") is True:
                stats.empty_records += 1  # a no-target expression: its box and mask are placeholders
                continue
            stats.instances += 1
            size = sizes.get(ann.image_id)
            if size is None:
                continue  # reported as unknown_image
            height, width = size
            x, y, w, h = ann.bbox
            check_box_xyxy(self.report, (x, y, x + w, y + h), height, width, where)
            check_instance_mask(self.report, ann.segmentation, height, width, f"{where}.segmentation",
                                self.options.has_mask)
        if images:
            images.finish()

    def refcoco_jsonl(self, json_file: str, image_dir: str | None = None) -> None:
        """TAO Deploy's VG evaluation input: one expression per line, ``{image_id, file_name, height,
        width, annotations: [{bbox xywh, category_id, segmentation, empty}], sentence: {raw, ...}}``."""
        shown = fileio.redact(json_file)
        stats = SourceStats(shown, "refcoco", fileio.redact(image_dir or ""))
        self.report.sources.append(stats)
        images = self.image_checker(image_dir, shown)
        for where, obj in self._json_lines(json_file, shown):
            try:
                name = as_str(require(obj, "file_name", where), f"{where}: file_name")
                height = as_int(require(obj, "height", where), f"{where}: height", minimum=1)
                width = as_int(require(obj, "width", where), f"{where}: width", minimum=1)
                text = as_str(require(require(obj, "sentence", where), "raw", f"{where}: sentence"),
                              f"{where}: sentence.raw")
                anns = require(obj, "annotations", where)
                if not isinstance(anns, list):
                    raise DataError(f"{where}: annotations must be a list")
                boxes = [as_box(require(a, "bbox", f"{where}: annotations[{i}]"), f"{where}: annotations[{i}].bbox",
                                layout="[x, y, width, height]") for i, a in enumerate(anns)]
            except DataError as exc:
                self.report.add("bad_record", where, str(exc).split(f"{where}: ", 1)[-1])
                continue
            stats.records += 1
            stats.images.add(name)
            if images:
                images.check(name, where, height, width)
            if self.text:
                self.text.add(text, where, "sentence")
            for i, (ann, (x, y, w, h)) in enumerate(zip(anns, boxes)):
                if ann.get("empty") is True:
                    stats.empty_records += 1
                    continue
                stats.instances += 1
                check_box_xyxy(self.report, (x, y, x + w, y + h), height, width, f"{where}: annotations[{i}]")
                check_instance_mask(self.report, ann.get("segmentation"), height, width,
                                    f"{where}: annotations[{i}].segmentation", self.options.has_mask)
        if images:
            images.finish()

    def _json_lines(self, json_file: str, shown: str):
        """``(where, object)`` per non-blank line; bad JSON and unreadable files are reported."""
        try:
            for line, text in fileio.iter_lines(json_file):
                if not text.strip():
                    continue
                where = f"{shown}:{line}"
                try:
                    yield where, json.loads(text)
                except json.JSONDecodeError as exc:
                    self.report.add("bad_record", where, f"invalid JSON ({exc.msg} at column {exc.colno})")
        except DataError as exc:
            self.report.add("missing_file" if "not found" in str(exc) else "bad_record", shown, str(exc))

    def inference_jsonl(self, json_file: str, image_dir: str | None = None) -> None:
        shown = fileio.redact(json_file)
        stats = SourceStats(shown, "inference", fileio.redact(image_dir or ""))
        self.report.sources.append(stats)
        images = self.image_checker(image_dir, shown)
        for where, obj in self._json_lines(json_file, shown):
            try:
                path = as_str(require(obj, "image_path", where), f"{where}: image_path")
                expression = as_str(require(obj, "expression", where), f"{where}: expression")
            except DataError as exc:
                self.report.add("bad_record", where, str(exc).split(f"{where}: ", 1)[-1])
                continue
            stats.records += 1
            stats.images.add(path)
            if images and not images.source.exists(path):
                self.report.add("missing_image", where, f"'{path}' not found in {images.source.describe()}")
            if self.text:
                self.text.add(expression, where, "expression")

    def label_map_file(self, path: str) -> None:
        stats = SourceStats(fileio.redact(path), "label_map")
        self.report.sources.append(stats)
        label_map = self._label_map(path, fileio.redact(path))
        stats.records = len(label_map or {})

    def captions(self, value: Any, where: str) -> None:
        try:
            names = parse_captions(value, where)
        except DataError as exc:
            self.report.add("bad_record", where, str(exc))
            return
        if self.text:
            self.text.add(" . ".join(names) + " .", where, "inference prompt")

    def finish(self) -> None:
        if self.text:
            self.text.flush()
