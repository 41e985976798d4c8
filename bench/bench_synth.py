"""Speed of the synthetic dataset generator (target: 1,000 images in under 30 s on 2 cores).

    python bench/bench_synth.py [--num-images 1000] [--image-size 256] [--keep DIR]

Prints seconds, images per second and the size of what was written, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from mask_grounding_dino.data.synth import SynthConfig, generate_synthetic_dataset


def _folder_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=1000, help="training images")
    parser.add_argument("--num-val", type=int, default=0)
    parser.add_argument("--num-vg", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="write here and keep the files")
    args = parser.parse_args()
    cfg = SynthConfig(num_train=args.num_images, num_val=args.num_val, num_vg=args.num_vg,
                      seed=args.seed, width=args.image_size, height=args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or os.path.join(tmp, "synth")
        start = time.perf_counter()
        summary = generate_synthetic_dataset(out, cfg)
        seconds = time.perf_counter() - start
        images = sum(s.images for s in summary.splits.values())
        print(json.dumps({
            "images": images,
            "instances": sum(s.instances for s in summary.splits.values()),
            "seconds": round(seconds, 2),
            "images_per_s": round(images / seconds, 1),
            "megabytes": round(_folder_bytes(out) / 1e6, 1),
            "image_size": args.image_size,
            "cpu_count": os.cpu_count(),
        }))


if __name__ == "__main__":
    main()
