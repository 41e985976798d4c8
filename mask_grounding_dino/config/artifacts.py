"""Write (or check) the generated files: ``schemas/`` and ``references/`` under a folder.

``mask_grounding_dino schemas [--out DIR] [--check]`` calls these. The project commits the
generated files at its root; ``tests/config/test_artifacts.py`` fails when they are stale.
"""

from __future__ import annotations

import os
import pathlib

from .experiment import ACTIONS
from .loader import dump_yaml
from .schema import build_manifest, build_schema, spec_template, to_json
from .skill_info import build_skill_info

REGENERATE_COMMAND = "mask_grounding_dino schemas --out ."


def generated_files() -> dict[str, str]:
    """Relative path -> file text for every generated file."""
    files = {f"schemas/{action}.schema.json": to_json(build_schema(action)) for action in ACTIONS}
    files["schemas/manifest.json"] = to_json(build_manifest())
    files.update({f"references/spec_template_{action}.yaml": spec_template(action) for action in ACTIONS})
    files["references/skill_info.yaml"] = dump_yaml(build_skill_info())
    return files


def write_artifacts(out_dir: str | os.PathLike) -> list[pathlib.Path]:
    """Write every generated file under ``out_dir`` (atomically); returns the paths written."""
    from ..utils.atomic import atomic_write_text

    written = []
    for relative, text in generated_files().items():
        path = pathlib.Path(out_dir) / relative
        atomic_write_text(path, text)
        written.append(path)
    return written


def stale_artifacts(out_dir: str | os.PathLike) -> list[str]:
    """Generated files that are missing under ``out_dir`` or differ from what the code produces now."""
    stale = []
    for relative, text in generated_files().items():
        path = pathlib.Path(out_dir) / relative
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            stale.append(relative)
    return stale
