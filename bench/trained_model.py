"""The trained model a TAO-deviation benchmark measures: command-line arguments and loading."""

from __future__ import annotations

import argparse

import torch

from mask_grounding_dino import Predictor
from mask_grounding_dino.config import load_spec


def model_parser(doc: str, default_out: str) -> argparse.ArgumentParser:
    """A parser with the arguments every such benchmark takes (add its own after)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--spec", required=True, help="the spec the model was trained with (quickstart: spec.yaml)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=default_out)
    return parser


def load_trained(args: argparse.Namespace):
    """``(cfg, model, text_processor)`` from the parsed arguments, on the CPU with ``args.threads``."""
    torch.set_num_threads(args.threads)
    cfg = load_spec(args.spec)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu", spec=cfg)
    return cfg, predictor.backend.model, predictor.backend.text_processor
