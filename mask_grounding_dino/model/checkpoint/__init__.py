"""Checkpoints people have: ours, TAO's, the original Grounding DINO release and
Hugging Face folders (one file per layout; ``loader.py`` detects which)."""

from .loader import RawCheckpoint, load_checkpoint, load_model, read_checkpoint
from .native import save_checkpoint
from .summary import LoadSummary, apply_state_dict
from .tao import ours_to_tao

__all__ = ["LoadSummary", "RawCheckpoint", "apply_state_dict", "load_checkpoint", "load_model", "ours_to_tao",
           "read_checkpoint", "save_checkpoint"]
