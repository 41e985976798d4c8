"""Data I/O benchmark: images/s from a folder, an images.tar.gz (first run with extraction,
then cached) and a real S3 endpoint (moto on loopback); `dataset validate` throughput on a
generated ODVG jsonl (200,000 records by default). Prints medians. Not a test.

    python bench/bench_data_io.py [--images 200] [--records 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image


def make_images(folder: str, count: int, width: int, height: int) -> list[str]:
    """JPEGs of smooth gradients plus noise (compress like photos, unlike pure noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    names = []
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    for i in range(count):
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, (xx + yy + i) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        name = f"images/{i:06d}.jpg"
        Image.fromarray(pixels).save(os.path.join(folder, name), quality=90)
        names.append(name)
    return names


def time_reads(source, names: list[str]) -> float:
    start = time.perf_counter()
    for name in names:
        source.read_array(name)
    return time.perf_counter() - start


def report(label: str, seconds: list[float], images: int) -> None:
    med = statistics.median(seconds)
    print(f"{label:<46} {images / med:9.1f} images/s   (median of {len(seconds)}: {med:.3f} s for {images})")


def bench_local(root: str, names: list[str], repeats: int) -> str:
    from mask_grounding_dino.data.sources import open_image_source

    report("folder", [time_reads(open_image_source(root), names) for _ in range(repeats)], len(names))
    archive = os.path.join(root, "images.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(os.path.join(root, "images"), arcname="images")
    print(f"  images.tar.gz: {os.path.getsize(archive) / 1e6:.1f} MB")
    first, cached = [], []
    for r in range(repeats):
        cache = os.path.join(root, f"cache{r}")
        start = time.perf_counter()
        src = open_image_source(archive, cache_dir=cache)
        extract = time.perf_counter() - start
        first.append(extract + time_reads(src, names))
        start = time.perf_counter()
        src = open_image_source(archive, cache_dir=cache)
        cached.append(time.perf_counter() - start + time_reads(src, names))
        print(f"  run {r}: extraction {extract:.3f} s")
    report("images.tar.gz, first run (hash + extract + read)", first, len(names))
    report("images.tar.gz, cached (stat key + read)", cached, len(names))
    return archive


def bench_s3(root: str, names: list[str], archive: str, repeats: int) -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    try:
        import s3fs

        from mask_grounding_dino.data.sources import open_image_source

        fs = s3fs.S3FileSystem()
        fs.mkdir("bench-data")
        fs.put(os.path.join(root, "images"), "bench-data/ds/images", recursive=True)
        fs.put_file(archive, "bench-data/ds/images.tar.gz")
        report("s3 folder (moto, loopback)",
               [time_reads(open_image_source("s3://bench-data/ds"), names) for _ in range(repeats)], len(names))
        first = []
        for r in range(repeats):
            start = time.perf_counter()
            src = open_image_source("s3://bench-data/ds/images.tar.gz", cache_dir=os.path.join(root, f"s3cache{r}"))
            first.append(time.perf_counter() - start + time_reads(src, names))
        report("s3 images.tar.gz, first run (download+extract)", first, len(names))
    finally:
        server.stop()


def write_odvg(path: str, records: int, names: list[str], classes: int = 80) -> None:
    rng = random.Random(0)
    labels = [f"class {i}" for i in range(classes)]
    with open(path, "w") as f:
        for i in range(records):
            instances = []
            for _ in range(rng.randint(1, 3)):
                x, y, w, h = rng.uniform(0, 250), rng.uniform(0, 150), rng.uniform(5, 60), rng.uniform(5, 60)
                lab = rng.randrange(classes)
                poly = [round(v, 2) for v in (x, y, x + w, y, x + w, y + h, x + w / 2, y + h, x, y + h)]
                instances.append({"bbox": [round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2)],
                                  "label": lab, "category": labels[lab], "mask": [poly]})
            f.write(json.dumps({"file_name": names[i % len(names)], "height": 240, "width": 320, "image_id": i,
                                "detection": {"instances": instances}}) + "\n")
    with open(path.replace(".jsonl", "_labelmap.json"), "w") as f:
        json.dump({str(i): n for i, n in enumerate(labels)}, f)


def bench_validate(root: str, names: list[str], records: int) -> None:
    path = os.path.join(root, "annotations_odvg.jsonl")
    start = time.perf_counter()
    write_odvg(path, records, names)
    print(f"  wrote {records} records ({os.path.getsize(path) / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")
    cmd = [sys.executable, "-m", "mask_grounding_dino.data.tools.validate", path, "--image-dir", root,
           "--label-map", path.replace(".jsonl", "_labelmap.json"), "--json", os.path.join(root, "report.json")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.load(open(os.path.join(root, "report.json")))
    print(f"{'validate ' + str(records) + ' records (subprocess)':<46} {records / seconds:9.0f} records/s "
          f"  ({seconds:.1f} s wall incl. ~5 s imports; in-tool {summary['seconds']:.1f} s; "
          f"peak RSS {rss_mb:.0f} MB; exit {proc.returncode}; {summary['errors']} errors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-data-io-") as root:
        names = make_images(root, args.images, width, height)
        print(f"{args.images} JPEG images {width}x{height} in {root}")
        archive = bench_local(root, names, args.repeats)
        if not args.skip_s3:
            bench_s3(root, names, archive, args.repeats)
        if not args.skip_validate:
            bench_validate(root, names, args.records)


if __name__ == "__main__":
    main()
