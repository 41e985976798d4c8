"""bench/quickstart_seeds.py: the seed table the README's main-job numbers are checked with.

The fast tests feed the script finished runs (``--reuse``) and check the table, the spread and
the JSON; the slow one runs the real quickstart command on the script's tiny ``--smoke``
setting, so a change of the quickstart's flags or of ``quickstart_summary.json`` breaks it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "quickstart_seeds.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("quickstart_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seeds_script = _load_script()


def _summary(bbox: float, segm: float, selectivity: list[tuple[int, int, int]], wall: float = 600.0,
             train: float = 540.0) -> dict:
    """A ``quickstart_summary.json`` as the quickstart writes it; selectivity rows (returned, correct, objects)."""
    return {"wall_time_s": wall, "train_time_s": train, "checkpoint": "x.pth",
            "metrics": {"[bbox] test_mAP@50-95": bbox / 2, "[bbox] test_mAP@50": bbox,
                        "[segm] test_mAP@50-95": segm / 2, "[segm] test_mAP@50": segm},
            "selectivity": [{"category": f"c{i}", "returned": r, "correct": c, "objects": o,
                             "precision": c / r if r else 1.0, "recall": c / o, "confusions": {}}
                            for i, (r, c, o) in enumerate(selectivity)]}


def _finished_run(out: pathlib.Path, seed: int, summary: dict) -> None:
    folder = out / f"seed_{seed}"
    folder.mkdir(parents=True)
    (folder / "quickstart_summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_selectivity_is_pooled_over_categories():
    """Precision = right / returned boxes and recall = right boxes / objects, over all categories
    (a per-category mean would weigh a category with 1 box like one with 30)."""
    row = seeds_script.summary_row(3, _summary(0.8, 0.7, [(10, 9, 10), (2, 0, 5)], wall=120.0, train=60.0))
    assert row["seed"] == 3
    assert row["wall_min"] == 2.0 and row["train_min"] == 1.0
    assert row["bbox_map50"] == 0.8 and row["segm_map50"] == 0.7
    assert row["selectivity_precision"] == 9 / 12
    assert row["selectivity_recall"] == 9 / 15
    assert row["selectivity_returned"] == 12


def test_no_returned_box_leaves_precision_undefined():
    row = seeds_script.summary_row(0, _summary(0.0, 0.0, [(0, 0, 4)]))
    assert row["selectivity_precision"] is None
    assert row["selectivity_recall"] == 0.0


def test_reused_runs_give_the_table_spread_and_json(tmp_path, capsys):
    out = tmp_path / "seeds"
    for seed, bbox in ((0, 0.85), (1, 0.80), (2, 0.90)):
        _finished_run(out, seed, _summary(bbox, bbox - 0.01, [(10, 8, 9)]))
    assert seeds_script.main(["--out", str(out), "--reuse"]) == 0
    printed = capsys.readouterr().out
    assert "| 0 |" in printed and "| 2 |" in printed
    assert "| median |" in printed and "uptime before:" in printed and "uptime after:" in printed
    record = json.loads((out / "quickstart_seeds.json").read_text(encoding="utf-8"))
    assert record["seeds"] == [0, 1, 2]
    assert [r["bbox_map50"] for r in record["rows"]] == [0.85, 0.80, 0.90]
    assert record["spread"]["bbox_map50"] == {"min": 0.80, "median": 0.85, "max": 0.90}
    assert record["spread"]["selectivity_precision"]["median"] == 0.8


def test_an_existing_seed_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "seeds"
    (out / "seed_0").mkdir(parents=True)
    (out / "seed_0" / "keep.txt").write_text("earlier run", encoding="utf-8")
    with pytest.raises(SystemExit, match="seed_0 exists"):
        seeds_script.main(["--out", str(out), "--seeds", "0"])
    assert (out / "seed_0" / "keep.txt").read_text(encoding="utf-8") == "earlier run"


@pytest.mark.parametrize("text", ["0,x", "1,1", ","])
def test_bad_seed_lists_are_refused(text, capsys):
    with pytest.raises(SystemExit) as stop:
        seeds_script.main(["--seeds", text])
    assert stop.value.code == 2
    assert "--seeds" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_of_the_real_quickstart(tmp_path):
    """One seed of the real ``quickstart`` command on the tiny setting, in its own process."""
    out = tmp_path / "seeds"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--seeds", "5", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "quickstart_seeds.json").read_text(encoding="utf-8"))
    row, = record["rows"]
    assert row["seed"] == 5
    assert row["bbox_map50"] is not None and 0.0 <= row["bbox_map50"] <= 1.0
    assert row["segm_map50"] is not None and 0.0 <= row["segm_map50"] <= 1.0
    assert 0 < row["train_min"] <= row["wall_min"]
    assert record["runs"][0]["process_wall_s"] > 0
    spec = (out / "seed_5" / "spec.yaml").read_text(encoding="utf-8")
    assert "seed: 5" in spec                      # --seed reached the training spec
    assert "| 5 |" in done.stdout


def test_compare_says_whether_the_same_seed_ended_with_the_same_weights(tmp_path, capsys):
    """``--compare``: the final checkpoint's model weights are digested per seed; two runs of a seed
    compare equal only when every tensor is bitwise equal."""
    import torch

    def checkpoint(path, bump: float = 0.0):
        state = {"model.w": torch.ones(3) + bump, "model.b": torch.zeros(2), "optimizer_only": torch.ones(1)}
        torch.save({"state_dict": state}, path)
        return str(path)

    first, second = tmp_path / "first", tmp_path / "second"
    for out, bumps in ((first, (0.0, 0.0)), (second, (0.0, 1e-7))):
        for seed, bump in zip((0, 1), bumps):
            summary = _summary(0.8, 0.8, [(1, 1, 1)])
            out.mkdir(exist_ok=True)
            summary["checkpoint"] = checkpoint(out / f"final_{seed}.pth", bump)
            _finished_run(out, seed, summary)
    assert seeds_script.main(["--out", str(first), "--seeds", "0,1", "--reuse"]) == 0
    capsys.readouterr()
    assert seeds_script.main(["--out", str(second), "--seeds", "0,1", "--reuse",
                              "--compare", str(first / "quickstart_seeds.json")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seed ")]
    assert lines[0].startswith("seed 0: final weights IDENTICAL")
    assert lines[1].startswith("seed 1: final weights DIFFERENT")          # one float32 step apart
