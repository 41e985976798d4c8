"""Convert annotations between formats (COCO -> ODVG jsonl + label map + contiguous COCO).

``mask_grounding_dino dataset convert coco2odvg annotations.json [--out-dir DIR]`` (or
``convert --from coco --to odvg annotations.json``) writes, next to the input by default:

* ``<stem>_odvg.jsonl``: one ODVG line per image, boxes xyxy in pixels (clamped to the image),
  masks kept as stored (polygons or RLE), contiguous labels;
* ``<stem>_odvg_labelmap.json``: ``{"0": name, ...}`` (detection data);
* ``<stem>_contiguous.json``: the same COCO file with category ids remapped to ``0..K-1``
  (TAO's rule for validation / test data); every other key is kept.

The id map is computed from the file's own categories, sorted by their original id (COCO's
1..90 with gaps becomes 0..79): nothing is hard-coded. All declared categories are kept by
default, so separately converted train and val splits share one map; ``--only-used-categories``
keeps only those that have annotations (what TAO's data services do). Crowd annotations
(``iscrowd: 1``) and boxes with no area are left out of the ODVG file (counted in the summary);
the COCO output keeps them, since COCO evaluation uses crowd regions as "ignore" areas.
Images without annotations become records with no instances (negatives) unless
``--skip-empty-images``; images whose annotations were all dropped are skipped.

COCO files whose images carry a ``caption`` and annotations ``tokens_positive`` (grounding
data such as Flickr30k entities) become ODVG grounding records instead (``--mode``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import fileio
from ...errors import UserError
from ..coco import coco_from_dict, read_coco_json
from ..label_map import write_label_map
from ..records import CocoAnnotation


@dataclass
class ConvertSummary:
    """What a conversion wrote and dropped."""

    mode: str
    images: int = 0
    records: int = 0
    annotations: int = 0
    instances: int = 0
    dropped_crowd: int = 0
    dropped_degenerate: int = 0
    empty_images_kept: int = 0
    images_skipped: int = 0
    id_map: dict[int, int] = field(default_factory=dict)       # original category id -> contiguous id
    label_map: dict[int, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"wrote {name}: {path}" for name, path in self.outputs.items()]
        out.append(f"images: {self.images} -> {self.records} ODVG records ({self.empty_images_kept} without "
                   f"annotations kept as negatives, {self.images_skipped} skipped)")
        out.append(f"annotations: {self.annotations} -> {self.instances} "
                   f"{'instances' if self.mode == 'detection' else 'regions'} (dropped: {self.dropped_crowd} "
                   f"crowd, {self.dropped_degenerate} with a box of no area)")
        if self.id_map:
            pairs = [f"{old}->{new} ({self.label_map[new]})" for old, new in list(self.id_map.items())[:10]]
            more = f", ... ({len(self.id_map)} in all)" if len(self.id_map) > 10 else ""
            changed = any(old != new for old, new in self.id_map.items())
            out.append(f"category ids {'remapped' if changed else 'already contiguous'}: {', '.join(pairs)}{more}")
        return out


def default_outputs(coco_path: str, out_dir: str | None = None) -> dict[str, str]:
    """``{"odvg", "label_map", "coco"}`` paths next to ``coco_path`` (or in ``out_dir``)."""
    name = fileio.basename(coco_path)
    stem = name[:-5] if name.lower().endswith(".json") else name
    folder = out_dir if out_dir is not None else (coco_path.rsplit("/", 1)[0] if fileio.is_url(coco_path)
                                                  else os.path.dirname(fileio.local_path(coco_path)) or ".")
    return {"odvg": fileio.join(folder, f"{stem}_odvg.jsonl"),
            "label_map": fileio.join(folder, f"{stem}_odvg_labelmap.json"),
            "coco": fileio.join(folder, f"{stem}_contiguous.json")}


def convert_coco_to_odvg(coco_path: str, odvg_out: str, label_map_out: str | None = None,
                         coco_out: str | None = None, *, keep_crowd: bool = False,
                         only_used_categories: bool = False, skip_empty_images: bool = False,
                         mode: str = "auto") -> ConvertSummary:
    """Convert a COCO json (any category numbering) to ODVG; see the module docstring.

    Args:
        mode: ``auto`` (grounding when every image has a ``caption``), ``detection`` or ``grounding``.
    """
    shown = fileio.redact(coco_path)
    raw = read_coco_json(coco_path)
    dataset = coco_from_dict(raw, shown, require_contiguous=False, strict=True)
    if mode == "auto":
        mode = "grounding" if raw["images"] and all("caption" in img for img in raw["images"]) else "detection"
    if mode not in ("detection", "grounding"):
        raise UserError(f"convert coco2odvg: mode must be auto, detection or grounding, got {mode!r}")
    used = {ann.category_id for ann in dataset.annotations}
    kept_ids = sorted(cid for cid in dataset.categories if cid in used or not only_used_categories)
    id_map = {old: new for new, old in enumerate(kept_ids)}
    summary = ConvertSummary(mode=mode, id_map=id_map, label_map={id_map[c]: dataset.categories[c] for c in kept_ids},
                             images=len(dataset.images), annotations=len(dataset.annotations))
    captions = {img["id"]: img.get("caption") for img in raw["images"] if isinstance(img, dict)}
    by_image = dataset.annotations_by_image()

    def records():
        for img in dataset.images:
            anns = by_image.get(img.id, [])
            entries = [e for e in (_entry(ann, img.width, img.height, summary, keep_crowd, mode,
                                          captions.get(img.id)) for ann in anns) if e is not None]
            if anns and not entries:
                summary.images_skipped += 1
                continue
            if not anns:
                if skip_empty_images:
                    summary.images_skipped += 1
                    continue
                summary.empty_images_kept += 1
            summary.records += 1
            summary.instances += len(entries)
            line = {"file_name": img.file_name, "height": img.height, "width": img.width, "image_id": img.id}
            if mode == "detection":
                line["detection"] = {"instances": entries}
            else:
                line["grounding"] = {"caption": _clean_caption(captions.get(img.id) or ""), "regions": entries}
            yield line

    _write_jsonl(odvg_out, records())
    summary.outputs["odvg"] = fileio.redact(odvg_out)
    if label_map_out and mode == "detection":
        write_label_map(label_map_out, summary.label_map)
        summary.outputs["label_map"] = fileio.redact(label_map_out)
    if coco_out:
        fileio.write_json(coco_out, remap_coco(raw, id_map))
        summary.outputs["coco"] = fileio.redact(coco_out)
    return summary


def _entry(ann: CocoAnnotation, width: int, height: int, summary: ConvertSummary, keep_crowd: bool, mode: str,
           caption: str | None) -> dict | None:
    """The ODVG instance / region of one annotation, or None when it is dropped."""
    if ann.iscrowd and not keep_crowd:
        summary.dropped_crowd += 1
        return None
    if mode == "detection" and ann.category_id not in summary.id_map:
        return None  # an unused category cannot have annotations; kept for safety
    x, y, w, h = ann.bbox
    box = [min(max(x, 0.0), width), min(max(y, 0.0), height),
           min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)]
    if box[2] <= box[0] or box[3] <= box[1]:
        summary.dropped_degenerate += 1
        return None
    if mode == "detection":
        new = summary.id_map[ann.category_id]
        out = {"bbox": box, "label": new, "category": summary.label_map[new]}
    else:
        spans = ann.extra.get("tokens_positive") or []
        text = caption or ""
        phrase = " ".join(text[s:e] for s, e in spans) or summary.label_map.get(summary.id_map.get(ann.category_id, -1), "")
        out = {"bbox": box, "phrase": phrase}
        if spans:
            out["tokens_positive"] = [list(s) for s in spans]
    if ann.segmentation is not None:
        out["mask"] = ann.segmentation
    return out


def _clean_caption(text: str) -> str:
    """Strip trailing spaces; spans index into the caption, so nothing inside it changes."""
    return text.rstrip()


def remap_coco(raw: dict, id_map: dict[int, int]) -> dict:
    """A copy of the COCO dict with category ids mapped through ``id_map`` (categories not in
    it are dropped); every other key (info, licenses, supercategory...) is kept."""
    out = copy.deepcopy(raw)
    out["categories"] = sorted(({**cat, "id": id_map[int(cat["id"])]} for cat in raw["categories"]
                                if int(cat["id"]) in id_map), key=lambda c: c["id"])
    for ann in out["annotations"]:
        ann["category_id"] = id_map[int(ann["category_id"])]
    return out


def _write_jsonl(path: str, lines) -> None:
    with fileio.atomic_write(path) as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
            handle.write("\n")


# ------------------------------------------------------------------------------ CLI

@dataclass(frozen=True)
class Converter:
    source: str
    target: str
    help: str
    run: Callable[[argparse.Namespace, str], int]


def _run_coco2odvg(args: argparse.Namespace, input_path: str) -> int:
    if not fileio.exists(input_path):
        raise UserError(f"convert coco2odvg: {fileio.redact(input_path)} not found")
    defaults = default_outputs(input_path, args.out_dir)
    outputs = {"odvg": args.odvg_out or defaults["odvg"], "label_map": args.label_map_out or defaults["label_map"],
               "coco": None if args.no_coco_out else (args.coco_out or defaults["coco"])}
    for key, path in outputs.items():
        if path and _same_file(path, input_path):
            raise UserError(f"convert coco2odvg: the {key} output {fileio.redact(path)} would overwrite the input")
    summary = convert_coco_to_odvg(input_path, outputs["odvg"], outputs["label_map"], outputs["coco"],
                                   keep_crowd=args.keep_crowd, only_used_categories=args.only_used_categories,
                                   skip_empty_images=args.skip_empty_images, mode=args.mode)
    print(f"coco2odvg ({summary.mode}): {fileio.redact(input_path)}")
    for line in summary.lines():
        print(f"  {line}")
    return 0


def _same_file(a: str, b: str) -> bool:
    if fileio.is_url(a) or fileio.is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.abspath(fileio.local_path(a)) == os.path.abspath(fileio.local_path(b))


#: Conversions by name (``<from>2<to>``); add an entry to support another pair.
CONVERTERS: dict[str, Converter] = {
    "coco2odvg": Converter("coco", "odvg", "COCO json -> ODVG jsonl + label map + contiguous COCO", _run_coco2odvg),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(f"{n} ({c.help})" for n, c in CONVERTERS.items())
    parser.add_argument("items", nargs="+", metavar="ARG",
                        help=f"CONVERSION INPUT (e.g. coco2odvg annotations.json), or INPUT with --from/--to; "
                             f"conversions: {names}")
    parser.add_argument("--from", dest="source", help="input format (instead of a conversion name), e.g. coco")
    parser.add_argument("--to", dest="target", help="output format (with --from), e.g. odvg")
    parser.add_argument("--out-dir", help="folder for the outputs (default: the input's folder)")
    parser.add_argument("--odvg-out", help="ODVG jsonl path (default <stem>_odvg.jsonl)")
    parser.add_argument("--label-map-out", help="label map path (default <stem>_odvg_labelmap.json)")
    parser.add_argument("--coco-out", help="contiguous-id COCO path (default <stem>_contiguous.json)")
    parser.add_argument("--no-coco-out", action="store_true", help="do not write the contiguous-id COCO json")
    parser.add_argument("--keep-crowd", action="store_true", help="keep iscrowd annotations in the ODVG file")
    parser.add_argument("--only-used-categories", action="store_true",
                        help="label map with only categories that have annotations (TAO data-services behaviour)")
    parser.add_argument("--skip-empty-images", action="store_true", help="no records for images without annotations")
    parser.add_argument("--mode", choices=("auto", "detection", "grounding"), default="auto",
                        help="record type; auto = grounding when every image has a caption")


def run(args: argparse.Namespace) -> int:
    items = list(args.items)
    if items[0] in CONVERTERS:
        name = items.pop(0)
        if args.source or args.target:
            raise UserError(f"dataset convert: give a conversion name ({name}) or --from/--to, not both")
    elif args.source and args.target:
        name = f"{args.source.lower()}2{args.target.lower()}"
        if name not in CONVERTERS:
            raise UserError(f"dataset convert: no conversion from {args.source} to {args.target}; available: "
                            f"{', '.join(CONVERTERS)}")
    else:
        raise UserError(f"dataset convert: first give a conversion ({', '.join(CONVERTERS)}) or --from/--to; "
                        f"got {items[0]!r}")
    if len(items) != 1:
        raise UserError(f"dataset convert {name}: expected one input file, got {len(items)}: {' '.join(items)}")
    return CONVERTERS[name].run(args, items[0])
