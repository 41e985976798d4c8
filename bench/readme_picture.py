"""The README's picture: annotated held-out images of a quickstart run side by side.

    python bench/readme_picture.py runs/quickstart/inference/images_annotated docs/quickstart_inference.jpg \
        --images val_000000.jpg,val_000001.jpg,val_000002.jpg

Each picture is resized to ``--side`` px square and laid out in one row with ``--gap`` px of white
between them (the README's 784x256 strip: three 256 px tiles, 8 px gaps).
"""

from __future__ import annotations

import argparse
import os

from PIL import Image


def montage(paths: list[str], side: int, gap: int) -> Image.Image:
    strip = Image.new("RGB", (len(paths) * side + (len(paths) - 1) * gap, side), "white")
    for i, path in enumerate(paths):
        with Image.open(path) as tile:
            strip.paste(tile.convert("RGB").resize((side, side), Image.LANCZOS), (i * (side + gap), 0))
    return strip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a run's inference/images_annotated folder")
    parser.add_argument("out", help="the JPEG to write")
    parser.add_argument("--images", default="val_000000.jpg,val_000001.jpg,val_000002.jpg")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--gap", type=int, default=8)
    args = parser.parse_args(argv)
    paths = [os.path.join(args.folder, name) for name in args.images.split(",") if name]
    montage(paths, args.side, args.gap).save(args.out, quality=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
