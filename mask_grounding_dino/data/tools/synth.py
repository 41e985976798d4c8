"""Write the built-in synthetic dataset (coloured shapes with masks) in TAO's layout.

``mask_grounding_dino dataset synth --out DIR [--num-images N --seed S --image-size 256 ...]``
writes ``DIR/train``, ``DIR/val`` and ``DIR/vg`` (see ``mask_grounding_dino/data/synth``).
"""

from __future__ import annotations

import argparse
import time

from ...errors import UserError
from ..synth import PALETTE, SHAPES, SceneParams, SynthConfig, generate_synthetic_dataset
from ..synth.categories import DEFAULT_COLORS, DEFAULT_SHAPES


def parse_image_size(text: str) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"320x240"`` -> (width 320, height 240)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise UserError(f"dataset synth: --image-size '{text}' is not a size; use N or WIDTHxHEIGHT "
                        "(e.g. 256 or 320x240)")
    return values[0], values[1]


def _word_list(text: str) -> tuple[str, ...]:
    return tuple(w.strip().lower() for w in text.split(",") if w.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, s = SynthConfig(), SceneParams()
    parser.add_argument("--out", required=True, help="output folder (created; our files are overwritten)")
    parser.add_argument("--num-images", type=int, default=d.num_train, help="training images")
    parser.add_argument("--num-val", type=int, default=d.num_val, help="held-out validation images")
    parser.add_argument("--num-vg", type=int, default=d.num_vg,
                        help="images of the referring (VG) split; 0 skips it")
    parser.add_argument("--seed", type=int, default=d.seed, help="same seed -> byte-identical files")
    parser.add_argument("--image-size", default=f"{d.width}", help="N or WIDTHxHEIGHT (default 256)")
    parser.add_argument("--colors", default=",".join(DEFAULT_COLORS),
                        help=f"comma-separated colours from: {', '.join(PALETTE)}")
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                        help=f"comma-separated shapes from: {', '.join(SHAPES)}")
    parser.add_argument("--min-objects", type=int, default=s.min_objects, help="objects per image, at least")
    parser.add_argument("--max-objects", type=int, default=s.max_objects, help="objects per image, at most")
    parser.add_argument("--empty-fraction", type=float, default=s.empty_fraction,
                        help="share of images with no object")
    parser.add_argument("--min-size", type=float, default=s.min_size, help="object diameter (px at 256), min")
    parser.add_argument("--max-size", type=float, default=s.max_size, help="object diameter (px at 256), max")
    parser.add_argument("--min-visible", type=float, default=s.min_visible,
                        help="least visible share of an object (occlusion and border)")
    parser.add_argument("--clutter", type=int, default=s.clutter, help="max unlabelled outlines per image")
    parser.add_argument("--noise", type=float, default=s.noise, help="pixel noise std (0-255 scale)")
    parser.add_argument("--image-format", choices=("jpg", "png"), default=d.image_format)
    parser.add_argument("--expressions-per-image", type=int, default=d.expressions_per_image,
                        help="VG expressions per image")
    parser.add_argument("--extract-images", action="store_true",
                        help="also write each split's images into <split>/images/")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    width, height = parse_image_size(str(args.image_size))
    scene = SceneParams(min_objects=args.min_objects, max_objects=args.max_objects,
                        empty_fraction=args.empty_fraction, min_size=args.min_size,
                        max_size=args.max_size, min_visible=args.min_visible, clutter=args.clutter,
                        noise=args.noise)
    return SynthConfig(num_train=args.num_images, num_val=args.num_val, num_vg=args.num_vg,
                       seed=args.seed, width=width, height=height, colors=_word_list(args.colors),
                       shapes=_word_list(args.shapes), scene=scene, image_format=args.image_format,
                       expressions_per_image=args.expressions_per_image,
                       extract_images=bool(args.extract_images))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    start = time.perf_counter()
    summary = generate_synthetic_dataset(args.out, cfg)
    took = time.perf_counter() - start
    print(f"synthetic dataset written to {summary.out_dir} in {took:.1f} s "
          f"({len(summary.categories)} categories)")
    for name, split in summary.splits.items():
        extra = f", {split.expressions} expressions ({split.empty_expressions} no-target)" if name == "vg" else ""
        print(f"  {name}: {split.images} images, {split.instances} instances, "
              f"{split.empty_images} without objects{extra}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the tool on its own (``python -m mask_grounding_dino.data.tools.synth``)."""
    parser = argparse.ArgumentParser(prog="mask_grounding_dino dataset synth",
                                     description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        for line in exc.problems:
            print(f"error: {line}")
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
