"""Did two training runs do the same thing, bit for bit?

Compares two training results folders (``train`` of a quickstart output, or a train
``results_dir``): every logged step of ``history.jsonl`` (loss, its terms, learning rate; exact
floats, not rounded) and every tensor of the final checkpoint's ``state_dict`` (SHA-256 of its bytes).
Prints the first step whose loss differs, how many tensors differ, and one digest over all
tensors per run; exit code 0 when everything is identical, 1 otherwise.

    python bench/compare_runs.py /tmp/r1/train /tmp/r2/train
    python bench/compare_runs.py /tmp/r1/train /tmp/r2/train --checkpoint-a a.pth --checkpoint-b b.pth

The final checkpoint is the one with the highest step in its name (``*_step_NNNNN.pth``),
else the newest ``.pth`` of the folder.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import sys

_STEP = re.compile(r"_step_(\d+)\.pth$")


def final_checkpoint(folder: str) -> str:
    paths = glob.glob(os.path.join(folder, "*.pth"))
    if not paths:
        raise SystemExit(f"error: no .pth checkpoint in {folder}")
    stepped = [(int(m.group(1)), p) for p in paths if (m := _STEP.search(os.path.basename(p)))]
    return max(stepped)[1] if stepped else max(paths, key=os.path.getmtime)


def tensor_digests(path: str) -> dict[str, str]:
    """``{name: sha256}`` of every tensor of the checkpoint's ``state_dict`` (dtype and shape included)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    digests = {}
    for name, tensor in state.items():
        tensor = tensor.detach().contiguous()
        digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        digests[name] = digest.hexdigest()
    return digests


def total_digest(digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}={digests[k]};" for k in sorted(digests)).encode()).hexdigest()[:16]


def step_rows(folder: str) -> dict[int, dict]:
    """``{step: row}`` from ``history.jsonl``: the loss, its terms and the learning rate of each
    logged step (JSON keeps a float's exact value)."""
    rows = {}
    path = os.path.join(folder, "history.jsonl")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line) if line.strip() else {}
                if "step" in row:
                    rows[int(row["step"])] = row
    return rows


def compare(folder_a: str, folder_b: str, ckpt_a: str | None = None, ckpt_b: str | None = None) -> dict:
    rows_a, rows_b = step_rows(folder_a), step_rows(folder_b)
    common = sorted(set(rows_a) & set(rows_b))
    differing = [s for s in common if rows_a[s] != rows_b[s]]
    paths = (ckpt_a or final_checkpoint(folder_a), ckpt_b or final_checkpoint(folder_b))
    dig_a, dig_b = tensor_digests(paths[0]), tensor_digests(paths[1])
    names = sorted(set(dig_a) | set(dig_b))
    tensors_differing = [n for n in names if dig_a.get(n) != dig_b.get(n)]
    return {"checkpoints": paths, "steps_compared": len(common), "steps_differing": len(differing),
            "first_differing_step": differing[0] if differing else None,
            "losses_at_first_difference": ([rows_a[differing[0]].get("train_loss"), rows_b[differing[0]].get("train_loss")]
                                       if differing else None),
            "tensors": len(names), "tensors_differing": len(tensors_differing),
            "examples_differing": tensors_differing[:5], "digests": [total_digest(dig_a), total_digest(dig_b)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="first training results folder")
    parser.add_argument("b", help="second training results folder")
    parser.add_argument("--checkpoint-a", help="checkpoint of the first run (default: its final one)")
    parser.add_argument("--checkpoint-b", help="checkpoint of the second run (default: its final one)")
    parser.add_argument("--json", help="also write the comparison here")
    args = parser.parse_args(argv)
    result = compare(args.a, args.b, args.checkpoint_a, args.checkpoint_b)
    print(f"checkpoints      {result['checkpoints'][0]}\n                 {result['checkpoints'][1]}")
    print(f"logged steps     {result['steps_compared']} compared, {result['steps_differing']} with different values"
          + (f" (first: step {result['first_differing_step']}, {result['losses_at_first_difference'][0]!r} vs "
             f"{result['losses_at_first_difference'][1]!r})" if result["first_differing_step"] is not None else ""))
    print(f"tensors          {result['tensors']}, {result['tensors_differing']} differ"
          + (f" (e.g. {', '.join(result['examples_differing'])})" if result["tensors_differing"] else ""))
    print(f"weights digest   {result['digests'][0]}  {result['digests'][1]}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    identical = result["steps_differing"] == 0 and result["tensors_differing"] == 0
    print("identical" if identical else "DIFFERENT")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
