"""The package's messages: through logging, shown by the command line, once per multi-process run."""

from __future__ import annotations

import logging
import subprocess
import sys

from mask_grounding_dino.utils.log import ConsoleHandler, RankZeroFilter, get_logger


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("mask_grounding_dino.x", level, __file__, 1, msg, None, None)


def test_console_lines_and_prefixes(capsys):
    handler = ConsoleHandler()
    handler.emit(_record(logging.INFO, "train: writing to /r (new folder)"))
    handler.emit(_record(logging.WARNING, "key: no effect"))
    handler.emit(_record(logging.ERROR, "broken"))
    out, err = capsys.readouterr()
    assert out == "train: writing to /r (new folder)\nwarning: key: no effect\n" and err == "error: broken\n"


def test_only_rank_zero_shows_info_and_warnings(monkeypatch):
    keep = RankZeroFilter()
    monkeypatch.setenv("RANK", "1")
    assert not keep.filter(_record(logging.INFO, "x")) and not keep.filter(_record(logging.WARNING, "x"))
    assert keep.filter(_record(logging.ERROR, "x"))
    monkeypatch.setenv("RANK", "0")
    assert keep.filter(_record(logging.INFO, "x"))


def test_library_modules_log_under_the_package_logger():
    assert get_logger("mask_grounding_dino.engine.trainer").name == "mask_grounding_dino.engine.trainer"
    assert get_logger("tools").parent is not None and get_logger("tools").name == "mask_grounding_dino.tools"


def test_importing_the_package_prints_nothing_and_installs_no_handler():
    """A program that imports the package keeps control of logging: nothing is written to its
    stdout unless it (or our command line) asks for it."""
    code = ("import logging, mask_grounding_dino.actions.train as t, mask_grounding_dino.utils.log as l;"
            "l.get_logger('mask_grounding_dino.x').info('hidden');"
            "print(len(logging.getLogger('mask_grounding_dino').handlers), len(logging.getLogger().handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 0"


def test_library_code_does_not_print():
    """Only the command-line front ends print (cli.py, the dataset tools, the compat report)."""
    import ast
    import pathlib

    package = pathlib.Path(__file__).resolve().parents[2] / "mask_grounding_dino"
    front_ends = {"cli.py", "jobs/cli.py", "config/compat.py", "data/tools/synth.py", "data/tools/convert.py",
                  "data/tools/validate/__init__.py"}
    printing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in front_ends:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{rel}:{node.lineno}")
    assert not printing, "library code prints (use utils.log.get_logger(__name__)): " + ", ".join(printing)
