"""PNG figures for runs and leaderboards (matplotlib's object API: no pyplot, no global state).

`forecast_figure` draws a few test windows: history, actuals, the forecast mean and its
intervals. `compare_figure` draws a metric by model version and the error by horizon step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

_BAND_ALPHA = {80: 0.35, 95: 0.18}


def forecast_figure(
    history: np.ndarray,
    actual: np.ndarray,
    mean: np.ndarray,
    lower: Mapping[int, np.ndarray],
    upper: Mapping[int, np.ndarray],
    *,
    title: str,
    labels: Sequence[str] = (),
    show_history: int | None = None,
) -> Figure:
    """One panel per window: history, actual future, forecast mean and interval bands.

    Args:
        history: [K, L] values before each origin.
        actual: [K, H] values from each origin.
        mean: [K, H] forecasts.
        lower: level -> [K, H] lower bounds (and `upper` the upper ones).
        labels: one caption per window (e.g. "window 120").
        show_history: history steps drawn (default: min(L, 3 H)).
    """
    k, horizon = actual.shape
    shown = min(history.shape[1], show_history or 3 * horizon)
    fig = Figure(figsize=(8, 2.2 * k), constrained_layout=True)
    axes = fig.subplots(k, 1, squeeze=False)[:, 0]
    past = np.arange(-shown, 0)  # [S]
    future = np.arange(horizon)  # [H]
    for i, ax in enumerate(axes):
        ax.plot(past, history[i, -shown:], color="0.35", lw=1.0, label="history")
        ax.plot(future, actual[i], color="black", lw=1.2, label="actual")
        for level in sorted(lower, reverse=True):
            ax.fill_between(
                future,
                lower[level][i],
                upper[level][i],
                color="tab:blue",
                alpha=_BAND_ALPHA.get(level, 0.25),
                lw=0,
                label=f"{level}% interval",
            )
        ax.plot(future, mean[i], color="tab:blue", lw=1.4, label="forecast")
        ax.axvline(-0.5, color="0.6", lw=0.8, ls=":")
        if i < len(labels):
            ax.set_title(labels[i], fontsize=9, loc="left")
    axes[0].legend(loc="upper left", fontsize=8, ncols=3)
    axes[-1].set_xlabel("steps from the forecast origin")
    fig.suptitle(title)
    return fig


def compare_figure(
    versions: Sequence[str],
    values: Sequence[float],
    per_step: Mapping[str, Sequence[float]],
    *,
    metric: str,
    title: str,
    highlight: str | None = None,
) -> Figure:
    """Bar chart of `metric` by version, next to the error by horizon step of each version.

    Args:
        versions: bar labels (e.g. "v3 gru").
        values: metric per version (NaN bars are left empty).
        per_step: version label -> per-step error (the same metric by horizon step).
        highlight: the label drawn in a distinct colour (the champion).
    """
    fig = Figure(figsize=(12, 4.5), constrained_layout=True)
    bars, steps = fig.subplots(1, 2)
    colours = ["tab:orange" if v == highlight else "tab:blue" for v in versions]
    bars.bar(range(len(versions)), np.nan_to_num(np.asarray(values, dtype=float)), color=colours)
    bars.set_xticks(range(len(versions)), list(versions), rotation=30, ha="right", fontsize=8)
    bars.set_ylabel(metric)
    bars.set_title(f"{metric} by version (orange: champion)", fontsize=10)
    for label, curve in per_step.items():
        if len(curve):
            steps.plot(np.arange(1, len(curve) + 1), curve, marker=".", lw=1.0, label=label)
    steps.set_xlabel("horizon step")
    steps.set_ylabel(f"{metric} at step")
    steps.set_title("error by horizon step", fontsize=10)
    if per_step:
        steps.legend(fontsize=7)
    fig.suptitle(title)
    return fig


def save(figure: Figure, path: Path) -> Path:
    """Write `figure` as PNG (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80, format="png")
    return path
