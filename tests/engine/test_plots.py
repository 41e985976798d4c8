"""The training plots are readable: grouped panels where no two curves of one axes share a
colour, COCO's -1 ("not applicable") left out and named, epochs counted from 1."""

from __future__ import annotations

import json
import math

import pytest
from matplotlib.colors import to_hex

from mask_grounding_dino.engine.plots import loss_figure, metrics_figure, plot_history

TERMS = ["loss_ce", "loss_bbox", "loss_giou", "loss_xy", "loss_hw", "loss_mask", "loss_dice"]


@pytest.fixture
def run_folder(tmp_path):
    """3 epochs of 5 steps, a history row per step with every term in its three variants and the
    per-layer copies (_0, _1), and validations after epochs 0 and 2 where medium and large
    objects are absent (-1)."""
    with open(tmp_path / "history.jsonl", "w") as handle:
        for step in range(1, 16):
            row = {"step": step, "epoch": (step - 1) // 5, "lr": 1e-4 * min(1.0, step / 4), "train_loss": 30.0 / step}
            for term in TERMS:
                for suffix in ("", "_interm", "_dn", "_0", "_1"):
                    row[term + suffix] = 1.0 / step + len(term + suffix) * 0.01
            handle.write(json.dumps(row) + "\n")
    with open(tmp_path / "val_metrics.jsonl", "w") as handle:
        for epoch, value in ((0, 0.1), (2, 0.4)):
            metrics = {}
            for iou in ("bbox", "segm"):
                for name in ("mAP@50-95", "mAP@50", "mAP@75", "mAP_small", "AR@100", "AR_small"):
                    metrics[f"[{iou}] val_{name}"] = value
                for name in ("mAP_medium", "mAP_large", "AR_medium", "AR_large"):
                    metrics[f"[{iou}] val_{name}"] = -1.0
            handle.write(json.dumps({"epoch": epoch, "global_step": 5 * epoch + 5, "metrics": metrics,
                                     "val_loss": 5.0 - epoch}) + "\n")
    return tmp_path


def _curves(fig):
    return {ax.get_title(): ax.get_lines() for ax in fig.axes if ax.get_visible() and ax.get_title()}


def test_loss_panels_group_the_terms_with_distinct_colours(run_folder):
    panels = _curves(loss_figure(str(run_folder)))
    assert list(panels) == ["Total loss (weighted sum)", "Classification (focal)", "Boxes", "Masks",
                            "Learning rate (main group, as used)"]
    for title, lines in panels.items():
        colours = [to_hex(line.get_color()) for line in lines]
        assert len(colours) == len(set(colours)), (title, colours)
    boxes = {line.get_label(): line.get_linestyle() for line in panels["Boxes"]}
    assert boxes == {"L1": "-", "L1, denoising": ":", "L1, encoder proposals": "--",
                     "GIoU": "-", "GIoU, denoising": ":", "GIoU, encoder proposals": "--"}
    labels = [line.get_label() for lines in panels.values() for line in lines]
    assert not [label for label in labels if label.endswith(("_0", "_1")) or "xy" in label or "hw" in label]
    lr = panels["Learning rate (main group, as used)"][0]
    assert list(lr.get_ydata()) == pytest.approx([1e-4 * min(1.0, s / 4) for s in range(1, 16)])


def test_metrics_leave_out_not_applicable_values_and_count_epochs_from_one(run_folder):
    fig = metrics_figure(str(run_folder))
    panels = _curves(fig)
    assert list(panels) == ["[bbox] AP", "[bbox] AR", "[segm] AP", "[segm] AR"]
    for title, lines in panels.items():
        colours = [to_hex(line.get_color()) for line in lines]
        assert len(colours) == len(set(colours)), title
        for line in lines:
            assert list(line.get_xdata()) == [1, 3]  # validations after epoch 1 and epoch 3
            assert all(y >= 0 for y in line.get_ydata() if not math.isnan(y))
        assert not [line for line in lines if "medium" in line.get_label() or "large" in line.get_label()]
    note = " ".join(text.get_text() for text in fig.texts)
    assert "not applicable" in note and "[bbox] val_mAP_medium" in note and "[segm] val_AR_large" in note


def test_plot_files_are_written(run_folder):
    written = plot_history(str(run_folder))
    assert [p.rsplit("/", 1)[-1] for p in written] == ["loss.png", "metrics.png"]
