"""Figures: training curves read from run folders, and each metric against the number of steps."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from wavediff.errors import WavediffError
from wavediff.evaluation.runner import METRICS, EvaluationReport

log = logging.getLogger(__name__)


def _pyplot():  # noqa: ANN202 - returns the pyplot module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_training_curves(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``{"loss": (N, 2), "val_loss": (M, 2), "val_loss_ema": (M, 2)}`` arrays of (step, value) from ``metrics.jsonl``.

    ``run_dir`` may be a run folder or one of its checkpoint folders.
    """
    path = Path(run_dir)
    if path.name.startswith("step_") and path.parent.name == "checkpoints":
        path = path.parent.parent
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise WavediffError(f"no metrics.jsonl in {str(path)!r}: is it a wavediff run folder?")
    curves: dict[str, list[tuple[float, float]]] = {"loss": [], "val_loss": [], "val_loss_ema": []}
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        for key in curves:
            if key in row and row[key] is not None and "step" in row:
                curves[key].append((float(row["step"]), float(row[key])))
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 2) for k, v in curves.items()}


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if values.shape[0] < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_training_curves(run_dirs: Sequence[str | Path], path: str | Path, names: Sequence[str] | None = None) -> Path:
    """Training loss (moving average over 1% of the steps) and validation loss (raw and EMA weights), log y."""
    plt = _pyplot()
    names = list(names) if names else [Path(r).name for r in run_dirs]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    plotted = 0
    for i, (run, name) in enumerate(zip(run_dirs, names)):
        curves = read_training_curves(run)
        colour = colours[i % len(colours)]
        loss = curves["loss"]
        if loss.shape[0]:
            window = max(1, loss.shape[0] // 100)
            y = _smooth(loss[:, 1], window)
            ax.plot(loss[window - 1:, 0] if window > 1 and loss.shape[0] >= window else loss[:, 0], y, color=colour,
                    alpha=0.6, lw=1, label=f"{name}: training loss" + (f" (mean of {window})" if window > 1 else ""))
            plotted += 1
        for key, style in (("val_loss", "--"), ("val_loss_ema", "-")):
            val = curves[key]
            if val.shape[0]:
                label = "validation loss" + (" (EMA weights)" if key.endswith("ema") else "")
                ax.plot(val[:, 0], val[:, 1], style, color=colour, lw=2, marker="o", ms=3, label=f"{name}: {label}")
                plotted += 1
    if not plotted:
        plt.close(fig)
        raise WavediffError("the run folders hold no losses yet")
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_metrics_vs_steps(report: EvaluationReport, path: str | Path) -> Path:
    """One panel per metric: each checkpoint's (and sampler variant's) mean ± 95% CI against steps (log x);
    Griffin-Lim as dashed lines."""
    plt = _pyplot()
    cols = 4
    rows = int(np.ceil(len(METRICS) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows))
    axes = np.atleast_1d(axes).reshape(-1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    checkpoints = list(dict.fromkeys((s.spec.checkpoint, s.spec.variant) for s in report.systems
                                     if s.spec.kind != "griffin-lim"))
    baselines = [s for s in report.systems if s.spec.kind == "griffin-lim"]
    for ax, metric in zip(axes, METRICS):
        for j, ckpt in enumerate(checkpoints):
            results = sorted((s for s in report.systems if (s.spec.checkpoint, s.spec.variant) == ckpt),
                             key=lambda s: s.spec.steps or 0)
            if results[0].spec.steps is None:      # a one-pass vocoder: one value, a solid line across
                value = results[0].metrics[metric.key].mean
                if np.isfinite(value):
                    ax.axhline(value, lw=1.5, color=colours[j % len(colours)], label=results[0].spec.name)
                continue
            x = [s.spec.steps for s in results]
            y = [s.metrics[metric.key].mean for s in results]
            err = [0.0 if not np.isfinite(s.metrics[metric.key].ci95) else s.metrics[metric.key].ci95 for s in results]
            label = results[0].spec.name.replace(f", {results[0].spec.steps} steps", "")
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colours[j % len(colours)], label=label)
        for k, base in enumerate(baselines):
            value = base.metrics[metric.key].mean
            if np.isfinite(value):
                ax.axhline(value, ls="--", lw=1, color="grey", alpha=0.5 + 0.5 * k / max(1, len(baselines)),
                           label=base.spec.name)
        ax.set_xscale("log")
        all_steps = sorted({s.spec.steps for s in report.systems if s.spec.steps})
        if all_steps:
            ax.set_xlim(all_steps[0] / 1.3, all_steps[-1] * 1.3)
            ax.set_xticks(all_steps)
            ax.set_xticklabels([str(s) for s in all_steps])
            ax.minorticks_off()
        ax.set_title(f"{metric.label} ({metric.better} is better)", fontsize=10)
        ax.set_xlabel("sampling steps")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(METRICS):]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) > len(METRICS):
        axes[-1].legend(handles, labels, loc="center", fontsize=8)
    else:
        fig.legend(handles, labels, loc="lower center", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
