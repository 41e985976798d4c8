"""``plots/loss.png`` and ``plots/metrics.png`` from a run's ``history.jsonl`` / ``val_metrics.jsonl``.

Readable by construction: loss terms are grouped into panels (total, classification, boxes,
masks, region head, learning rate), every curve of a panel has its own colour (the variant of
a term also has its own line style: solid = last decoder layer, dashed = encoder proposals
``_interm``, dotted = denoising queries ``_dn``), and COCO's -1 ("not applicable": no object in
that size range) is left out and named under the figure. Epochs are counted from 1, as the
progress lines count them: the loss plot's top axis shows epochs done, the metrics plot puts
the validation after epoch k at k (files keep TAO's 0-based index).
"""

from __future__ import annotations

import math
import os
import re

from .history import read_jsonl

_AUX = re.compile(r"_\d+$")  # per-decoder-layer copies: logged as the final layer's term only
_VARIANTS = (("_interm", "encoder proposals", "--"), ("_dn", "denoising", ":"), ("", "", "-"))
#: Loss panels: title, the base terms shown (in order) and their legend names.
_LOSS_PANELS = (
    ("Classification (focal)", {"loss_ce": "focal"}),
    ("Boxes", {"loss_bbox": "L1", "loss_giou": "GIoU"}),
    ("Masks", {"loss_mask": "focal", "loss_dice": "dice"}),
    ("Region head (ReLA)", {"loss_rela_nt": "no-target", "loss_rela_minimap": "minimap",
                            "loss_rela_union_mask": "union mask"}),
)
#: Diagnostic parts of L1 (x/y and w/h): kept in history.jsonl, not drawn.
_NOT_DRAWN = {"loss_xy", "loss_hw"}
_COCO_GROUPS = ("[bbox]", "[segm]")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as plt

    return plt


def _split_variant(key: str) -> tuple[str, str, str]:
    for suffix, label, style in _VARIANTS:
        if suffix and key.endswith(suffix):
            return key[: -len(suffix)], label, style
    return key, "", "-"


def _colours(plt, count: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(count)]


def _finite(values) -> list[float]:
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else float("nan") for v in values]


def _steps_per_epoch(rows: dict[int, dict]) -> float | None:
    """From the last logged step of the first complete epoch (rows are also written at each epoch end)."""
    epochs = sorted({r["epoch"] for r in rows.values() if "epoch" in r})
    for epoch in epochs[:-1]:
        end = max(s for s, r in rows.items() if r.get("epoch") == epoch)
        if end > 0:
            return end / (epoch + 1)
    return None


def _epoch_axis(ax, steps_per_epoch: float | None) -> None:
    if steps_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epochs done", fontsize=8)
        top.tick_params(labelsize=7)


def _loss_panels(history: dict[int, dict], val_rows: list[dict]) -> list[tuple[str, list[tuple]]]:
    """``[(title, [(label, xs, ys, style), ...]), ...]`` for the panels that have data."""
    steps = sorted(history)
    keys = {k for row in history.values() for k in row
            if k.startswith("loss") and not _AUX.search(k) and _split_variant(k)[0] not in _NOT_DRAWN}

    def series(key):
        xs = [s for s in steps if key in history[s]]
        return xs, _finite(history[s][key] for s in xs)

    panels = []
    total = []
    if any("train_loss" in row for row in history.values()):
        total.append(("training (per step)", *series("train_loss"), "-"))
    val = [(r["global_step"], r.get("val_loss")) for r in val_rows if "global_step" in r]
    if val:
        total.append(("validation", [s for s, _ in val], _finite(v for _, v in val), "o-"))
    if total:
        panels.append(("Total loss (weighted sum)", total))
    shown = set()
    for title, terms in _LOSS_PANELS:
        curves = []
        for base, name in terms.items():
            for suffix, variant, style in _VARIANTS[::-1]:  # final layer first
                key = base + suffix
                if key in keys:
                    shown.add(key)
                    curves.append((f"{name}, {variant}" if variant else name, *series(key), style))
        if curves:
            panels.append((title, curves))
    other = sorted(keys - shown)
    if other:
        panels.append(("Other terms", [(k, *series(k), _split_variant(k)[2]) for k in other]))
    if any("lr" in row for row in history.values()):
        panels.append(("Learning rate (main group, as used)", [("lr", *series("lr"), "-")]))
    return panels


def _plain_numbers(ax) -> None:
    """Tick labels as plain numbers (30, 0.5, 2e-05), on a log axis at 1, 2 and 5 of each decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    if ax.get_yscale() == "log":
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(plain)


def loss_figure(results_dir: str):
    """The figure of ``plots/loss.png`` (a matplotlib Figure), or None without a history."""
    plt = _pyplot()

    history = {row["step"]: row for row in read_jsonl(os.path.join(results_dir, "history.jsonl")) if "step" in row}
    if not history:
        return None
    panels = _loss_panels(history, read_jsonl(os.path.join(results_dir, "val_metrics.jsonl")))
    cols = 3 if len(panels) > 4 else 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    spe = _steps_per_epoch(history)
    for ax, (title, curves) in zip(axes.flat, panels):
        for (label, xs, ys, style), colour in zip(curves, _colours(plt, len(curves))):
            marker = "o" if "o" in style else None
            # the learning rate holds between logged steps: drawn as steps, not ramps
            ax.plot(xs, ys, style.replace("o", "") or "-", color=colour, marker=marker, markersize=4,
                    linewidth=1.6 if style == "-" else 1.3, label=label,
                    drawstyle="steps-pre" if label == "lr" else "default")
        values = [y for _, _, ys, _ in curves for y in ys if not math.isnan(y)]
        # log scale only where the values span more than ~a decade (else a linear axis reads better)
        if values and min(values) > 0 and max(values) / min(values) > 20 and not title.startswith("Learning"):
            ax.set_yscale("log")
        _plain_numbers(ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
        if len(curves) > 1:
            ax.legend(fontsize=6.5, loc="best", framealpha=0.7)
        _epoch_axis(ax, spe)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Training losses (solid: last decoder layer, dashed: encoder proposals, dotted: denoising)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _metric_panels(vals: dict[int, dict]) -> tuple[list[tuple[str, list[tuple]]], list[str]]:
    """Panels of validation metrics and the names left out as not applicable (-1 at every epoch)."""
    epochs = sorted(vals)
    names = list(vals[epochs[-1]]["metrics"])
    xs = [e + 1 for e in epochs]  # the validation after epoch index e is "after epoch e+1"

    def series(name):
        ys = _finite(vals[e]["metrics"].get(name, float("nan")) for e in epochs)
        return [float("nan") if y < 0 else y for y in ys]  # COCO's -1: not applicable

    groups: list[tuple[str, list[str]]] = []
    for group in _COCO_GROUPS:
        mine = [n for n in names if n.startswith(group)]
        for kind, test in (("AP", lambda n: "_mAP" in n), ("AR", lambda n: "_AR" in n)):
            chosen = [n for n in mine if test(n)]
            if chosen:
                groups.append((f"{group} {kind}", chosen))
    rest = [n for n in names if not n.startswith(_COCO_GROUPS)]
    if rest:
        groups.append(("Metrics", rest))
    panels, absent = [], []
    for title, members in groups:
        curves = []
        for name in members:
            ys = series(name)
            if all(math.isnan(y) for y in ys):
                absent.append(name)
                continue
            short = re.sub(r"^\[\w+\]\s*", "", name).replace("val_", "")
            curves.append((short, xs, ys, "o-"))
        if curves:
            panels.append((title, curves))
    return panels, absent


def metrics_figure(results_dir: str):
    """The figure of ``plots/metrics.png``, or None without validation metrics."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()

    vals = {row["epoch"]: row for row in read_jsonl(os.path.join(results_dir, "val_metrics.jsonl"))
            if "epoch" in row and isinstance(row.get("metrics"), dict)}
    if not vals:
        return None
    panels, absent = _metric_panels(vals)
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 3.3 * rows + 0.4), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, panels):
        top = 0.0
        for (label, xs, ys, _), colour in zip(curves, _colours(plt, len(curves))):
            ax.plot(xs, ys, "-", marker="o", markersize=4, color=colour, linewidth=1.5, label=label)
            top = max([top] + [y for y in ys if not math.isnan(y)])
        ax.set_ylim(0, min(1.0, top * 1.15 + 0.02) if top <= 1 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Validation metrics (after each validated epoch)", fontsize=10)
    if absent:
        fig.text(0.5, 0.005, "not applicable in this validation set (no objects of that size), left out: "
                 + ", ".join(absent), ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04 if absent else 0, 1, 1))
    return fig


def plot_history(results_dir: str) -> list[str]:
    """Write the PNG plots; returns their paths (empty when there is nothing to plot)."""
    plt = _pyplot()

    out_dir = os.path.join(results_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, build in (("loss.png", loss_figure), ("metrics.png", metrics_figure)):
        fig = build(results_dir)
        if fig is not None:
            path = os.path.join(out_dir, name)
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written
