"""`forecast compare NAME`: a leaderboard of every version of a registered model.

Everything is read back from MLflow (version tags and aliases, the run's params and metrics,
the per-step metric history), so versions trained elsewhere (another machine, the scheduler)
appear too. Lower is better for the ranking metric (errors); coverage is shown next to its
nominal level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from training.errors import ExperimentError, TrackingError
from training.evaluation import plots
from training.registry.gate import CHALLENGER, CHAMPION
from training.registry.tracking import Tracker

RANK_METRICS = ("test_mae", "test_mse", "test_rmse", "test_smape", "test_mase", "val_mae")
_KEY_PARAMS = ("lookback", "hidden_size", "num_layers", "reservoir_size", "epochs", "decoder")
_METRICS = ("test_mae", "test_mse", "test_rmse", "test_smape", "test_mase", "test_coverage_80",
            "test_coverage_95", "test_width_80", "seasonal_naive_test_mae", "naive_test_mae",
            "val_mae", "train_seconds")  # fmt: skip
# (header, row key, significant digits) of the numeric columns of `render`
_COLUMNS = (("test MAE", "test_mae", 4), ("test MSE", "test_mse", 4), ("MASE", "test_mase", 3),
            ("MAE / sNaive", "mae_vs_seasonal_naive", 3), ("sMAPE", "test_smape", 3),
            ("cov 80", "test_coverage_80", 2), ("cov 95", "test_coverage_95", 2),
            ("train s", "train_seconds", 3))  # fmt: skip
_LIVE_COLUMNS = (("live n", "live_forecasts", 4), ("live MASE", "live_mase", 3),
                 ("live cov 80", "live_coverage_80", 2))  # fmt: skip


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def leaderboard(tracker: Tracker, name: str, metric: str = "test_mae") -> list[dict[str, Any]]:
    """One row per version of `name`, best `metric` first (versions without it last).

    Each row: version, family, champion, challenger, run_id, created_ms, dataset, horizon,
    covariates and future_covariates (the columns the version read), key params, the
    metrics of `_METRICS` (None when absent), `mae_vs_seasonal_naive`
    (test MAE / seasonal naive test MAE on the same windows; < 1 beats it), gate tags.

    Raises:
        ExperimentError: unknown ranking metric.
        TrackingError: unknown registered model (the message lists the known ones).
    """
    if metric not in RANK_METRICS:
        raise ExperimentError(
            f"--metric {metric!r} is not a ranking metric. Fix: use one of "
            f"{', '.join(RANK_METRICS)}"
        )
    versions = tracker.versions(name)
    if not versions:
        known = tracker.model_names()
        raise TrackingError(
            f"registered model {name!r} has no versions in {tracker.uri} (registered models: "
            f"{', '.join(known) or 'none'}). Fix: train one with `forecast train --name {name}` "
            "or pass the right --tracking-uri"
        )
    rows = []
    for v in versions:
        run = tracker.run_data(v.run_id) if v.run_id else None
        params = run.params if run else {}
        metrics = run.metrics if run else {}
        row: dict[str, Any] = {
            "version": v.version,
            "family": v.tags.get("family") or params.get("family", ""),
            "champion": CHAMPION in v.aliases,
            "challenger": CHALLENGER in v.aliases,
            "run_id": v.run_id,
            "created_ms": v.created_ms,
            "dataset": v.tags.get("dataset") or params.get("dataset", ""),
            "horizon": _int_or_none(params.get("max_horizon") or v.tags.get("horizon")),
            "params": {k: params[k] for k in _KEY_PARAMS if k in params},
            "covariates": _names(v.tags.get("covariates"), params.get("covariates")),
            "future_covariates": _names(
                v.tags.get("future_covariates"), params.get("future_covariates")
            ),
        }
        for key in _METRICS:
            value = metrics.get(key)
            row[key] = None if value is None or not math.isfinite(value) else float(value)
        mae, snaive = row["test_mae"], row["seasonal_naive_test_mae"]
        row["mae_vs_seasonal_naive"] = mae / snaive if mae is not None and snaive else None
        row["gate_decision"] = v.tags.get("gate_decision", "")
        row["val_score"] = _number(v.tags.get("val_score")) if v.tags.get("val_score") else None
        rows.append(row)
    return sorted(rows, key=lambda r: (r[metric] is None, r[metric] or 0.0, r["version"]))


def add_live(rows: list[dict[str, Any]], scores: Sequence[Any]) -> None:
    """Put each version's live accuracy (forecast log scores of that version) on its row:
    live_forecasts, live_mae, live_mase, live_coverage_80 (None where nothing is scored)."""
    by_version = {entry.version: entry.overall for entry in scores}
    for row in rows:
        live = by_version.get(str(row["version"]))
        row["live_forecasts"] = 0 if live is None else live.forecasts
        row["live_mae"] = None if live is None else live.mae
        row["live_mase"] = None if live is None else live.mase
        row["live_coverage_80"] = None if live is None else live.coverage.get(80)


def _names(tag: str | None, param: Any) -> list[str]:
    """Column names from a version tag ("a,b") or, for older versions, a JSON list param."""
    if tag is not None:
        return [n for n in tag.split(",") if n]
    if isinstance(param, str) and param.startswith("["):
        try:
            return [str(n) for n in json.loads(param)]
        except json.JSONDecodeError:
            return []
    return []


def _covariate_cell(row: dict[str, Any]) -> str:
    """ "temp; ahead: hum,holiday:US" (past, then future-known covariates), or "-"."""
    past, ahead = ",".join(row["covariates"]), ",".join(row["future_covariates"])
    parts = [p for p in (past, f"ahead: {ahead}" if ahead else "") if p]
    return "; ".join(parts) or "-"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def render(rows: Sequence[dict[str, Any]], name: str, metric: str) -> Table:
    """A rich table of leaderboard rows (champion marked with *); the live-accuracy columns
    only when some version has scored forecasts."""
    live = any(r.get("live_forecasts") for r in rows)
    columns = [*_COLUMNS, *(_LIVE_COLUMNS if live else ())]
    table = Table(title=f"{name}: versions ranked by {metric} (lower is better)")
    for header in ["v", "family", "key params", "covariates", *(c[0] for c in columns), "gate"]:
        left = header in ("family", "key params", "covariates")
        table.add_column(header, justify="left" if left else "right")
    for r in rows:
        marker = "*" if r["champion"] else ("c" if r["challenger"] else "")
        params = " ".join(f"{k}={v}" for k, v in r["params"].items())
        numbers = [_fmt(r.get(key), digits) for _, key, digits in columns]
        table.add_row(
            f"{r['version']}{marker}", str(r["family"]), params, _covariate_cell(r), *numbers,
            str(r["gate_decision"]),
        )  # fmt: skip
    table.caption = "* champion, c challenger; MAE / sNaive < 1 beats seasonal naive" + (
        "; live: the forecast log's scored forecasts" if live else ""
    )
    return table


def compare_plot(
    tracker: Tracker, name: str, rows: Sequence[dict[str, Any]], metric: str, path: Path
) -> Path:
    """PNG: `metric` by version, and its per-step history (`<metric>_by_step`) per version."""
    labels = [f"v{r['version']} {r['family']}" for r in rows]
    per_step = {}
    if metric.startswith("test_"):
        for label, r in zip(labels, rows, strict=True):
            if r["run_id"]:
                history = tracker.metric_history(r["run_id"], f"{metric}_by_step")
                per_step[label] = [value for _, value in history]
    champion = next((lab for lab, r in zip(labels, rows, strict=True) if r["champion"]), None)
    figure = plots.compare_figure(
        labels,
        [math.nan if r[metric] is None else r[metric] for r in rows],
        per_step,
        metric=metric,
        title=f"{name}: {metric} by version",
        highlight=champion,
    )
    return plots.save(figure, path)
