"""Search spaces of `forecast tune`, and the `[tune]` table of an experiment file.

A space maps a forecaster config key (or `lookback`) to a `Dimension`. The default space of a
family is built from the data (the look-back choices sit around the derived look-back); an
experiment file overrides it key by key:

    [tune]
    trials = 20              # trials to run (the CLI's --trials wins)
    time_budget = 30         # minutes for the whole search (--time-budget wins)
    grace_period = 2         # ASHA: epochs every trial gets before it may be stopped
    reduction_factor = 3     # ASHA: keep about 1/3 of the trials at each rung
    cpus_per_trial = 1       # Ray resources of one trial
    seed = 0                 # the TPE sampler's seed
    [tune.space.gru]         # one table per family (lstm, gru, rnn, esn)
    hidden_size = [32, 64, 128]              # a list: one of these
    lr = { loguniform = [1e-4, 1e-2] }       # log-uniform between the bounds
    dropout = { uniform = [0.0, 0.5] }       # uniform between the bounds
    num_layers = { randint = [1, 3] }        # an integer in [1, 3], both included
    norm = "revin"                           # a single value: fixed, not searched

Trial values are made consistent before they become a spec (`trial_spec`): the segment length
becomes the largest divisor of the trial's look-back up to the sampled value, a scalar ESN
`ridge` becomes a one-value grid, and an ESN `washout` is capped at the look-back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import io as models_io
from training.config_files import read_toml
from training.data.frame import SeriesFrame
from training.errors import ExperimentError
from training.jobs import defaults
from training.jobs.experiment import DERIVED_MODEL_KEYS, FAMILIES, TrainSpec
from training.jobs.preparation import default_lookback

RANGES = ("uniform", "loguniform", "randint")  # the kinds written { kind = [low, high] }
SETTINGS = {"trials": int, "time_budget": float, "grace_period": int, "reduction_factor": float,
            "cpus_per_trial": float, "seed": int}  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """One searched key: `kind` and its `values` (the choices, the [low, high] bounds, or the
    fixed value as a one-item tuple)."""

    kind: str
    values: tuple[Any, ...]

    def to_tune(self) -> Any:
        """The Ray Tune domain (a plain value when fixed); Optuna's TPE samples it."""
        from ray import tune

        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.kind == "randint":
            return tune.randint(int(low), int(high) + 1)  # tune's upper bound is exclusive
        if self.kind == "loguniform":
            return tune.loguniform(float(low), float(high))
        return tune.uniform(float(low), float(high))

    def describe(self) -> str:
        """A short text for tables and MLflow params, e.g. "loguniform[0.0001, 0.01]"."""
        if self.kind == "fixed":
            return repr(self.values[0])
        return f"{self.kind}{list(self.values)}"


@dataclass(frozen=True)
class TuneSettings:
    """The `[tune]` table: search settings and the per-family space overrides."""

    trials: int = 20
    time_budget: float | None = None  # minutes
    grace_period: int = 1
    reduction_factor: float = 3.0
    cpus_per_trial: float = 1.0
    seed: int = 0
    spaces: Mapping[str, Mapping[str, Dimension]] = field(default_factory=dict)


def read_settings(path: Path | None) -> TuneSettings:
    """The `[tune]` table of experiment file `path` (defaults without a file or a table).

    Raises:
        ExperimentError: a bad setting, an unknown family or key, or an empty range; the
            message names the file, the table, the key, the value and the fix.
    """
    if path is None:
        return TuneSettings()
    table = read_toml(path, "experiment file", "configs/load-etth1-gru.toml").get("tune", {})
    where = f"{path}: [tune]"
    if not isinstance(table, dict):
        raise ExperimentError(f"{where} must be a table. Fix: write [tune] on its own line")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in SETTINGS:
            values[key] = _setting(where, key, value)
        elif key != "space":
            known = ", ".join([*SETTINGS, "space"])
            raise ExperimentError(f"{where} {key}: unknown key. Fix: use one of {known}")
    space = table.get("space", {})
    if not isinstance(space, dict):
        raise ExperimentError(f"{where} space must be tables [tune.space.<family>]")
    spaces = {fam: _space_table(path, fam, keys) for fam, keys in space.items()}
    return TuneSettings(**values, spaces=spaces)


def _setting(where: str, key: str, value: Any) -> Any:
    kind = SETTINGS[key]
    above = {"reduction_factor": 1.0, "seed": -math.inf}.get(key, 0.0)
    number = isinstance(value, int if kind is int else int | float) and not isinstance(value, bool)
    if not (number and value > above):
        rule = {"reduction_factor": "a number > 1", "seed": "an integer"}.get(
            key, "an integer >= 1" if kind is int else "a number > 0"
        )
        raise ExperimentError(f"{where} {key} = {value!r}: must be {rule}. Fix: e.g. {key} = 2")
    return kind(value)


def _space_table(path: Path, family: str, keys: Any) -> dict[str, Dimension]:
    where = f"{path}: [tune.space.{family}]"
    if family not in FAMILIES:
        raise ExperimentError(
            f"{where}: unknown family {family!r}. Fix: use one of {', '.join(FAMILIES)}"
        )
    if not isinstance(keys, dict):
        raise ExperimentError(f"{where} must be a table of config keys")
    known = searchable_keys(family)
    out = {}
    for key, value in keys.items():
        if key not in known:
            raise ExperimentError(
                f"{where} {key}: not a searchable {family} key. Fix: use one of {', '.join(known)}"
            )
        dim = parse_dimension(f"{where} {key}", value)
        if isinstance(known[key], int) and dim.kind in ("uniform", "loguniform"):
            raise ExperimentError(
                f"{where} {key} = {value!r}: {key} is an integer. Fix: use "
                f"{{ randint = {list(dim.values)} }} or a list of integers"
            )
        out[key] = dim
    return out


def searchable_keys(family: str) -> dict[str, Any]:
    """Config keys a space may hold for `family` (its config's less the derived ones), each
    with its default value."""
    keys = models_io.config_from_dict({"family": family}).to_dict()
    skip = (*DERIVED_MODEL_KEYS, "device", "levels")
    return {k: v for k, v in keys.items() if k not in skip}


def parse_dimension(where: str, value: Any) -> Dimension:
    """A TOML value as a Dimension: a list (choice), {kind = [low, high]} or a fixed value.

    Raises:
        ExperimentError: an unknown kind, malformed bounds or an empty range.
    """
    if isinstance(value, list):
        if not value:
            raise ExperimentError(
                f"{where} = []: an empty choice. Fix: list at least one value, e.g. [32, 64]"
            )
        return Dimension("choice", tuple(value))
    if not isinstance(value, dict):
        return Dimension("fixed", (value,))
    if len(value) != 1 or next(iter(value)) not in RANGES:
        raise ExperimentError(
            f"{where} = {value!r}: expected one of {{ uniform = [low, high] }}, "
            "{ loguniform = [low, high] }, { randint = [low, high] }, a list or a value"
        )
    kind, bounds = next(iter(value.items()))
    pair = isinstance(bounds, list) and len(bounds) == 2
    if not (pair and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)):
        raise ExperimentError(
            f"{where} = {{ {kind} = {bounds!r} }}: bounds must be two numbers [low, high]. "
            f"Fix: e.g. {{ {kind} = [1, 4] }}"
        )
    low, high = bounds
    if kind == "randint" and not (isinstance(low, int) and isinstance(high, int)):
        raise ExperimentError(f"{where}: randint bounds {bounds} must be integers")
    empty = low > high if kind == "randint" else low >= high
    if empty or (kind == "loguniform" and low <= 0):
        rule = "low <= high" if kind == "randint" else "low < high"
        if kind == "loguniform":
            rule += " and low > 0"
        raise ExperimentError(
            f"{where} = {{ {kind} = {bounds} }}: an empty range ({rule}). Fix: e.g. "
            f"{{ {kind} = [{low}, {high * 10 if high > 0 else 1}] }}"
        )
    return Dimension(kind, (low, high))


# --- default spaces ------------------------------------------------------------------------


def lookback_choices(frame: SeriesFrame, spec: TrainSpec) -> tuple[int, ...]:
    """Half, one and two times the derived look-back, capped by the shortest series."""
    base = default_lookback(frame, spec)
    cap = max(2, (defaults.shortest_train_rows(frame, spec) - spec.horizon) // 2)
    return tuple(sorted({max(2, base // 2), base, max(2, min(2 * base, cap))}))


def default_space(frame: SeriesFrame, spec: TrainSpec) -> dict[str, Dimension]:
    """The family's space for this data (see the module docstring for the override)."""
    lookback = Dimension("choice", lookback_choices(frame, spec))
    if spec.family == "esn":
        return {
            "lookback": lookback,
            "reservoir_size": Dimension("choice", (100, 200, 400)),
            "spectral_radius": Dimension("uniform", (0.5, 1.2)),
            "leak_rate": Dimension("uniform", (0.05, 1.0)),
            "input_scaling": Dimension("loguniform", (0.05, 2.0)),
            "ridge": Dimension("loguniform", (1e-6, 1.0)),
        }
    target = defaults.segment_target(frame.frequency)
    return {
        "lookback": lookback,
        "hidden_size": Dimension("choice", (32, 64, 128, 256)),
        "num_layers": Dimension("randint", (1, 2)),
        "segment_length": Dimension("choice", tuple(sorted({max(1, target // 2), target}))),
        "lr": Dimension("loguniform", (1e-4, 3e-3)),
        "dropout": Dimension("uniform", (0.0, 0.5)),
        "norm": Dimension("choice", ("revin", "last")),
    }


def trial_spec(spec: TrainSpec, params: Mapping[str, Any]) -> TrainSpec:
    """`spec` with one trial's values, made consistent (see the module docstring).

    Raises:
        ExperimentError: when the values do not make a valid spec.
    """
    model = {**spec.model, **{k: v for k, v in params.items() if k != "lookback"}}
    lookback = int(params.get("lookback", spec.lookback or 0)) or None
    if "segment_length" in model and lookback is not None:
        top = max(1, min(int(model["segment_length"]), lookback))
        model["segment_length"] = max(d for d in range(1, top + 1) if lookback % d == 0)
    if isinstance(model.get("ridge"), int | float):
        model["ridge"] = [float(model["ridge"])]
    if spec.family == "esn" and lookback is not None and "washout" in model:
        model["washout"] = min(int(model["washout"]), lookback)
    for key, value in model.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ExperimentError(f"trial value {key}={value!r} is not finite")
    return TrainSpec.from_dict({**spec.to_dict(), "lookback": lookback, "model": model}, "trial")


# --- the experiment file -------------------------------------------------------------------


def read_spec(path: Path, **overrides: Any) -> TrainSpec:
    """`TrainSpec.from_toml(path, **overrides)` for a file that may hold a `[tune]` table (the
    experiment parser refuses tables it does not know; `read_settings` reads this one).

    Raises:
        ExperimentError: as `TrainSpec.from_toml`.
    """
    doc = read_toml(path, "experiment file", "configs/load-etth1-gru.toml")
    doc.pop("tune", None)
    return TrainSpec.from_document(doc, path, **overrides)
