"""The driver's side of a running search: every trial's reports, and progress updates.

Ray Tune calls the `Collector` callback on the driver for each trial event; it records the
trial's results (what `tune._outcome` turns into child runs) and tells the caller's
`on_update` (the CLI's live table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.jobs.tune_trial import SCORE


@dataclass(frozen=True)
class TrialUpdate:
    """One trial's state, for a progress display (`on_update`)."""

    trial_id: str
    status: str  # "running", "completed", "stopped" (by ASHA or the budget), "error"
    params: dict[str, Any]
    epoch: int
    score: float | None
    node_id: str


def plain(value: Any) -> Any:
    """NumPy scalars from Tune's samplers as plain Python (for JSON and MLflow)."""
    return value.item() if hasattr(value, "item") else value


# Where each running search's driver callback delivers (search key -> (reports, on_update)).
# Tune pickles its callbacks with the experiment state (cloudpickle copies a local class's
# globals by value), so the callback holds only the key and calls module-level `_on_event`.
SINKS: dict[str, tuple[dict[str, list[dict[str, Any]]], Any]] = {}


def _on_event(key: str, event: str, trial: Any, result: Mapping[str, Any] | None) -> None:
    """Record a trial's result (event "result") and tell the search's `on_update`."""
    reports, on_update = SINKS[key]
    rows = reports.setdefault(str(trial.trial_id), [])
    if event == "result" and result is not None:
        rows.append(dict(result))
    if on_update is None:
        return
    last = result or (rows[-1] if rows else {})
    status = {"result": "running", "start": "running", "error": "error"}.get(event)
    if status is None:  # "complete": finished its epochs, or stopped by ASHA or the budget
        status = "completed" if last.get("final") else "stopped"
    score = last.get(SCORE)
    on_update(
        TrialUpdate(
            trial_id=str(trial.trial_id),
            status=status,
            params={k: plain(v) for k, v in (trial.config or {}).items()},
            epoch=int(last.get("epoch", 0) or 0),
            score=None if score is None else float(score),
            node_id=str(last.get("node_id", "")),
        )
    )


def collector(key: str) -> Any:
    """A Ray Tune callback (on the driver) that passes trial events to `_on_event`."""
    from ray.tune import Callback

    class Collector(Callback):  # type: ignore[misc]
        def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            _on_event(key, "start", trial, {})

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            _on_event(key, "result", trial, result)

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            _on_event(key, "complete", trial, None)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            _on_event(key, "error", trial, None)

    return Collector()
