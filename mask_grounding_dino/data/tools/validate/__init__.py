"""Check a dataset (ODVG / COCO / label map / inference jsonl, with its images) before training.

``mask_grounding_dino dataset validate annotations_odvg.jsonl --image-dir images.tar.gz
--label-map annotations_odvg_labelmap.json`` or ``mask_grounding_dino dataset validate -e
spec.yaml [key=value ...]`` (every data source of the spec). Problems are grouped by kind with
the first examples of each (``file:line``), then a summary table; ``--json`` writes the same
as a machine-readable report. Exit code 1 when errors are found (warnings too with
``--strict``), 0 otherwise, 2 for usage errors.

It streams: ODVG lines are checked one at a time, images are checked for existence without
decoding (a folder or an extracted archive: one ``stat``; a remote folder: one listing), and
only a random sample of images is decoded (all of them with ``--check-decode``).
"""

from __future__ import annotations

import argparse
import sys
import time

from ... import fileio
from ....errors import UserError
from .checks import TextChecker
from .inputs import spec_sources, validate_path, validate_spec_source
from .report import KINDS, Report
from .validator import Options, Validator

__all__ = ["add_arguments", "run", "main", "KINDS", "Report", "Validator", "Options"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="annotation files: ODVG / inference .jsonl, COCO .json, label map .json/.txt; "
                             "with -e, key=value spec overrides")
    parser.add_argument("-e", "--experiment-spec", metavar="SPEC", help="validate every data source of this spec")
    parser.add_argument("--image-dir", help="images of PATHs: folder, images.tar.gz or URL (omit to skip image checks)")
    parser.add_argument("--label-map", help="label map of the ODVG detection records (or to compare COCO names)")
    parser.add_argument("--text-encoder", default=None,
                        help="tokenizer for prompt lengths (default: the spec's, else bert-base-uncased)")
    parser.add_argument("--max-text-len", type=int, default=None,
                        help="token limit of prompts (default: the spec's, else 256)")
    parser.add_argument("--no-mask", action="store_true", help="box-only data: do not require masks")
    parser.add_argument("--check-decode", action="store_true", help="decode every image (default: a sample)")
    parser.add_argument("--sample", type=int, default=16, help="images decoded per source to check sizes")
    parser.add_argument("--skip-images", action="store_true", help="do not check images at all")
    parser.add_argument("--cache-dir", default=None, help="where images.tar.gz archives are extracted")
    parser.add_argument("--max-examples", type=int, default=5, help="examples shown per problem kind")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write the report as JSON")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    report = Report(max_examples=max(args.max_examples, 0))
    cfg = None
    overrides = [p for p in args.paths if "=" in p] if args.experiment_spec else []
    paths = [p for p in args.paths if p not in overrides]
    if args.experiment_spec:
        if paths:
            raise UserError("dataset validate: give either -e SPEC (with key=value overrides) or annotation "
                            f"paths, not both (got {', '.join(paths)})")
        from ....config import load_spec  # imported here: path mode needs no spec machinery

        cfg = load_spec(args.experiment_spec, overrides)
    elif not paths:
        raise UserError("dataset validate: nothing to validate; give annotation files (e.g. annotations_odvg.jsonl "
                        "--image-dir images.tar.gz --label-map annotations_odvg_labelmap.json) or -e spec.yaml")
    else:
        for path in paths + [p for p in (args.label_map,) if p]:
            if not fileio.exists(path):
                raise UserError(f"dataset validate: {fileio.redact(path)} not found")
        if args.image_dir and not fileio.is_url(args.image_dir) and not fileio.exists(args.image_dir):
            raise UserError(f"dataset validate: --image-dir {args.image_dir} not found")

    options = Options(has_mask=(cfg.dataset.has_mask if cfg else True) and not args.no_mask,
                      sample=max(args.sample, 0), check_decode=args.check_decode,
                      skip_images=args.skip_images, cache_dir=args.cache_dir)
    text = _text_checker(args, cfg, report)
    validator = Validator(report, text, options)
    if cfg is not None:
        sources = list(spec_sources(cfg))
        if not sources:
            raise UserError(f"dataset validate: {args.experiment_spec} sets no data sources "
                            "(dataset.train_data_sources, val_data_sources, ...)")
        for key, entry in sources:
            validate_spec_source(validator, key, entry)
    else:
        for path in paths:
            validate_path(validator, path, args.image_dir, args.label_map)
    validator.finish()
    seconds = time.perf_counter() - start
    print(report.render(args.strict, seconds))
    if args.json_out:
        fileio.write_json(args.json_out, report.to_dict(args.strict, seconds), indent=2)
        print(f"report written to {fileio.redact(args.json_out)}")
    return report.exit_code(args.strict)


def _text_checker(args: argparse.Namespace, cfg, report: Report) -> TextChecker | None:
    encoder = args.text_encoder or (cfg.model.text_encoder_type if cfg else "bert-base-uncased")
    max_len = args.max_text_len or (cfg.model.max_text_len if cfg else 256)
    if max_len < 3:
        raise UserError(f"dataset validate: --max-text-len must be at least 3, got {max_len}")
    try:
        return TextChecker(encoder, max_len, report)
    except UserError as exc:
        if args.text_encoder:
            raise
        report.notes.append(f"prompt lengths not checked: {exc}")
        return None


def main(argv: list[str] | None = None) -> int:
    """Run as ``python -m mask_grounding_dino.data.tools.validate`` (the CLI calls :func:`run`)."""
    parser = argparse.ArgumentParser(prog="mask_grounding_dino dataset validate",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
