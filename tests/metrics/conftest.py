"""Make the sibling helper module ``_coco_synthetic`` importable (pytest runs in importlib mode)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
