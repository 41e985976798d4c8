"""Compare our generated schemas and our loader with TAO's packaged files.

Run ``python -m mask_grounding_dino.config.compat TAO_SKILL_DIR`` (a folder holding TAO's
``schemas/`` and ``references/``, e.g. the repository's copy in
``tests/fixtures/tao/tao-skill-bank/models/tao-train-mask-grounding-dino``) for a report with
counts; ``tests/config/test_compat.py`` asserts the same things. What is compared:

- every key path of each TAO ``schemas/<action>.schema.json`` (sections and keys; list
  items and the contents of data-source mappings are compared as whole values through
  ``default``) must exist in ours with equal ``type``, ``default``, ``minimum``,
  ``maximum``, ``enum``, ``math_cond``, ``depends_on``, ``parent_param``, ``popular``,
  ``automl_enabled``, ``pattern`` and ``required``, except the attributes listed in
  ``deviations.yaml`` (values compared as JSON, so ``5`` and ``5.0`` differ);
- every key path we have and TAO lacks must be listed under ``additions``;
- the AutoML default and disabled lists (top level and per section) must be equal as sets;
- every TAO ``references/spec_template_*.yaml`` (deploy ones too) must load and validate.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import SpecError
from .experiment import ACTIONS
from .loader import load_spec
from .schema import build_schema

COMPARED_ATTRIBUTES = ("type", "default", "minimum", "maximum", "enum", "math_cond", "depends_on", "parent_param",
                       "popular", "automl_enabled", "pattern", "required")
DEVIATIONS_FILE = pathlib.Path(__file__).with_name("deviations.yaml")


def load_deviations(path: pathlib.Path = DEVIATIONS_FILE) -> dict:
    """``{"schema": {path: set(attributes)}, "additions": set(paths)}`` from the deviations file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {"schema": {item["path"]: set(item["attributes"]) for item in data.get("schema", [])},
            "additions": {item["path"] for item in data.get("additions", [])}}


def schema_nodes(schema: dict) -> dict[str, dict]:
    """Dotted path -> node for every section and key of a schema (non-mapping entries skipped)."""
    out: dict[str, dict] = {}

    def walk(node: dict, prefix: str) -> None:
        for name, child in node.get("properties", {}).items():
            if isinstance(child, dict):
                path = f"{prefix}.{name}" if prefix else name
                out[path] = child
                walk(child, path)

    walk(schema, "")
    return out


@dataclass
class SchemaComparison:
    """Outcome of comparing one action's schema with TAO's."""

    action: str
    compared: int = 0
    matching: int = 0
    deviating: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unlisted_additions: list[str] = field(default_factory=list)
    automl_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatches or self.unlisted_additions or self.automl_mismatches)


def compare_schema(action: str, theirs: dict, ours: dict | None = None,
                   deviations: dict | None = None) -> SchemaComparison:
    ours = ours if ours is not None else build_schema(action)
    deviations = deviations if deviations is not None else load_deviations()
    result = SchemaComparison(action)
    our_nodes, their_nodes = schema_nodes(ours), schema_nodes(theirs)
    for path, their in their_nodes.items():
        result.compared += 1
        mine = our_nodes.get(path)
        if mine is None:
            result.missing.append(path)
            continue
        allowed = deviations["schema"].get(path, set())
        # A section's default is the sum of its keys' defaults, compared key by key instead (so an
        # added key does not make every enclosing section differ).
        attributes = [a for a in COMPARED_ATTRIBUTES if not (a == "default" and "properties" in their)]
        differing = [a for a in attributes if _attr(mine, a) != _attr(their, a)]
        unexpected = [a for a in differing if a not in allowed]
        if unexpected:
            for attribute in unexpected:
                result.mismatches.append(f"{path}.{attribute}: ours {_attr(mine, attribute)!r}, "
                                         f"TAO {_attr(their, attribute)!r}")
        elif differing:
            result.deviating.append(path)
        else:
            result.matching += 1
    for path in our_nodes:
        if path not in their_nodes and path not in deviations["additions"]:
            result.unlisted_additions.append(path)
    result.automl_mismatches = compare_automl(ours, theirs, deviations["additions"])
    return result


_ABSENT = "<absent>"


def _attr(node: dict, attribute: str) -> Any:
    """An attribute as canonical JSON text, so 5 and 5.0 (or 1 and true) count as different."""
    if attribute not in node:
        return _ABSENT
    value = node[attribute]
    if attribute in ("popular", "required") and isinstance(value, list):
        value = sorted(value)  # a section's list of key names: order carries no meaning
    return json.dumps(value, sort_keys=True)


def compare_automl(ours: dict, theirs: dict, additions: set[str] | frozenset = frozenset()) -> list[str]:
    """Differences in the AutoML lists, at the top and in every section (compared as sets).

    Keys listed under ``additions`` are left out of ours: TAO's lists cannot name keys its schema lacks.
    """
    problems = []
    pairs = [("<top>", ours, theirs)]
    our_nodes = schema_nodes(ours)
    pairs += [(path, our_nodes.get(path, {}), node) for path, node in schema_nodes(theirs).items()
              if "properties" in node]
    for where, mine, their in pairs:
        for key in ("automl_default_parameters", "automl_disabled_parameters"):
            a, b = set(mine.get(key, [])) - set(additions), set(their.get(key, []))
            if a != b:
                problems.append(f"{where} {key}: only ours {sorted(a - b)}, only TAO {sorted(b - a)}")
    return problems


def check_templates(skill_dir: pathlib.Path) -> dict[str, list[str]]:
    """Every TAO spec template -> the problems our loader reports ([] when it loads and validates)."""
    results = {}
    for path in sorted(glob.glob(str(skill_dir / "references" / "spec_template_*.yaml"))):
        try:
            load_spec(path)
            results[os.path.basename(path)] = []
        except SpecError as exc:
            results[os.path.basename(path)] = exc.problems
    return results


def compare_all(skill_dir: pathlib.Path) -> tuple[list[SchemaComparison], dict[str, list[str]]]:
    comparisons = []
    for action in ACTIONS:
        theirs = json.loads((skill_dir / "schemas" / f"{action}.schema.json").read_text(encoding="utf-8"))
        comparisons.append(compare_schema(action, theirs))
    return comparisons, check_templates(skill_dir)


def format_report(comparisons: list[SchemaComparison], templates: dict[str, list[str]]) -> str:
    lines = ["schema keys (ours vs TAO):"]
    for c in comparisons:
        lines.append(f"  {c.action:15s} compared {c.compared:4d}  matching {c.matching:4d}  "
                     f"listed deviations {len(c.deviating)}  missing {len(c.missing)}  "
                     f"mismatching {len(c.mismatches)}  unlisted additions {len(c.unlisted_additions)}  "
                     f"automl list differences {len(c.automl_mismatches)}")
        for item in c.missing:
            lines.append(f"    missing: {item}")
        for item in c.mismatches + c.automl_mismatches:
            lines.append(f"    differs: {item}")
        for item in c.unlisted_additions:
            lines.append(f"    not in deviations.yaml: {item}")
    total = sum(c.compared for c in comparisons)
    matching = sum(c.matching for c in comparisons)
    deviating = sum(len(c.deviating) for c in comparisons)
    lines.append(f"  total: {total} key paths compared, {matching} identical, {deviating} listed deviations")
    ok_templates = sum(1 for problems in templates.values() if not problems)
    lines.append(f"TAO spec templates loading and validating: {ok_templates}/{len(templates)}")
    for name, problems in templates.items():
        for problem in problems:
            lines.append(f"    {name}: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mask_grounding_dino.config.compat TAO_SKILL_DIR  (the folder of TAO's "
              "tao-train-mask-grounding-dino skill, holding schemas/ and references/)", file=sys.stderr)
        return 2
    skill_dir = pathlib.Path(argv[0])
    if not (skill_dir / "schemas").is_dir():
        print(f"error: no TAO skill folder at {skill_dir} (give the tao-train-mask-grounding-dino folder)",
              file=sys.stderr)
        return 2
    comparisons, templates = compare_all(skill_dir)
    print(format_report(comparisons, templates))
    ok = all(c.ok for c in comparisons) and not any(templates.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
