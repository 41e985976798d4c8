"""Importing the package changes nothing process-wide: no warning filters, logging set-up,
float settings or thread counts are installed by our modules (those belong to the caller; the
CLI and the actions set what they need around their own work)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

#: Imports every module of the package in a fresh interpreter and prints each process-wide
#: setting one of OUR files changed while being imported (third-party packages install their
#: own filters when imported; those are not ours to judge, so calls are attributed by the
#: calling file).
PROBE = r"""
import importlib, logging, os, pkgutil, sys, warnings
import torch
import mask_grounding_dino as pkg

ROOT = os.path.dirname(pkg.__file__)
changes = []

def watch(owner, name):
    original = getattr(owner, name)
    def recording(*args, **kwargs):
        caller = sys._getframe(1).f_code.co_filename
        if os.path.abspath(caller).startswith(ROOT + os.sep):
            changes.append(f"{name} from {os.path.relpath(caller, ROOT)}")
        return original(*args, **kwargs)
    setattr(owner, name, recording)

for owner, name in ((warnings, "filterwarnings"), (warnings, "simplefilter"), (logging, "basicConfig"),
                    (logging.Logger, "addFilter"), (logging.Logger, "addHandler"), (logging.Logger, "setLevel"),
                    (logging.Handler, "addFilter"), (torch, "set_flush_denormal"), (torch, "set_num_threads"),
                    (torch, "set_num_interop_threads")):
    watch(owner, name)

for module in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if not module.name.endswith("__main__"):      # running it would run the CLI
        importlib.import_module(module.name)
subnormal = (torch.tensor([1e-39]) * 1.0).item()
print("CHANGES", changes)
print("FLUSHED", subnormal == 0.0)
"""


def test_importing_every_module_installs_nothing_process_wide():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "CHANGES []" in lines, lines
    assert "FLUSHED False" in lines, lines
