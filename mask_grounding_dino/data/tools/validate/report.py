"""The validation report: problem kinds, bounded examples, per-source counts, text / JSON output."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...box_checks import DEGENERATE_BOX_SEVERITY

#: Kinds of problems: (severity, what it means). Errors break training or evaluation
#: (or silently corrupt them); warnings are handled by the loaders but worth knowing.
KINDS: dict[str, tuple[str, str]] = {
    "missing_file": ("error", "annotation, label map or image source not found"),
    "bad_record": ("error", "malformed file or record (bad JSON, missing or ill-typed key)"),
    "missing_image": ("error", "image file not found in the image source"),
    "unreadable_image": ("error", "image file cannot be decoded"),
    "image_size_mismatch": ("error", "height/width in the annotations differ from the image"),
    "non_contiguous_ids": ("error", "COCO category ids are not 0..K-1 (TAO's rule)"),
    "duplicate_id": ("error", "an image, annotation or category id is used twice"),
    "unknown_image": ("error", "annotation refers to an image id that is not declared"),
    "unknown_label": ("error", "label / category id not in the label map or categories"),
    "no_label_map": ("error", "detection records without a label map"),
    "category_mismatch": ("error", "category name differs from the label map's name for that id"),
    "duplicate_class_name": ("error", "two class ids share one name (indistinguishable in a prompt)"),
    "bad_mask": ("error", "malformed mask (cannot be decoded)"),
    "mask_mismatch": ("error", "mask size differs from its image"),
    "missing_mask": ("error", "instance without a mask while dataset.has_mask is true"),
    # The training dataset applies the same severity (data/box_checks.py): skipped and reported.
    "degenerate_box": (DEGENERATE_BOX_SEVERITY, "box with no area (skipped by training, which reports it)"),
    "box_outside_image": ("warning", "box extends more than 1 px outside the image (clamped by the loaders)"),
    "mask_outside_image": ("warning", "polygon points more than 1 px outside the image (clipped)"),
    "prompt_too_long": ("warning", "caption / prompt longer than max_text_len tokens (the rest is cut off)"),
    "label_map_not_contiguous": ("warning", "label map ids are not 0..K-1"),
    "duplicate_image_record": ("warning", "one image appears in several detection records (each line "
                                          "treats the other lines' objects as background)"),
    "empty_mismatch": ("warning", "grounding record with 'empty' inconsistent with its regions"),
}


@dataclass
class SourceStats:
    path: str
    format: str
    image_dir: str = ""
    records: int = 0
    instances: int = 0
    empty_records: int = 0
    images: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "image_dir": self.image_dir, "records": self.records,
                "images": len(self.images), "instances": self.instances, "empty_records": self.empty_records}


class Report:
    """Counts per problem kind plus the first ``max_examples`` examples of each (bounded memory)."""

    def __init__(self, max_examples: int = 5):
        self.max_examples = max_examples
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[tuple[str, str]]] = {}
        self.sources: list[SourceStats] = []
        self.notes: list[str] = []

    def add(self, kind: str, where: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < self.max_examples:
            examples.append((where, message))

    def total(self, severity: str) -> int:
        return sum(n for kind, n in self.counts.items() if KINDS[kind][0] == severity)

    def ordered_kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.counts]

    def to_dict(self, strict: bool, seconds: float) -> dict:
        return {
            "ok": self.exit_code(strict) == 0, "errors": self.total("error"), "warnings": self.total("warning"),
            "seconds": round(seconds, 3), "sources": [s.to_dict() for s in self.sources], "notes": self.notes,
            "problems": [{"kind": k, "severity": KINDS[k][0], "title": KINDS[k][1], "count": self.counts[k],
                          "examples": [{"where": w, "message": m} for w, m in self.examples[k]]}
                         for k in self.ordered_kinds()],
        }

    def exit_code(self, strict: bool = False) -> int:
        return 1 if self.total("error") or (strict and self.total("warning")) else 0

    def render(self, strict: bool, seconds: float) -> str:
        lines: list[str] = []
        for severity in ("error", "warning"):
            kinds = [k for k in self.ordered_kinds() if KINDS[k][0] == severity]
            if kinds:
                lines.append(f"{severity.upper()}S")
            for kind in kinds:
                lines.append(f"  {kind} ({self.counts[kind]}): {KINDS[kind][1]}")
                for where, message in self.examples[kind]:
                    lines.append(f"    {where}: {message}")
                hidden = self.counts[kind] - len(self.examples[kind])
                if hidden > 0:
                    lines.append(f"    ... and {hidden} more")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append("")
        lines.extend(self._table())
        errors, warnings = self.total("error"), self.total("warning")
        verdict = "FAILED" if self.exit_code(strict) else "OK"
        lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s) in {seconds:.1f} s")
        return "\n".join(lines)

    def _table(self) -> list[str]:
        header = ("source", "format", "records", "images", "instances")
        rows = [(s.path, s.format, str(s.records), str(len(s.images)), str(s.instances)) for s in self.sources]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
        out += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                for row in rows]
        if self.counts:
            out.append("")
            kw = max(len(k) for k in self.counts)
            out.append(f"{'problem'.ljust(kw)}  severity  count")
            out += [f"{k.ljust(kw)}  {KINDS[k][0].ljust(8)}  {self.counts[k]:>5}" for k in self.ordered_kinds()]
        return out
