"""The training spec: what to train on, which family, how to evaluate and gate it.

A `TrainSpec` comes from an experiment file (TOML; `FILE_KEYS` says where each key lands), from
CLI flags, or from a run's `spec.json`; it is validated once here and travels with the run so
that `forecast retrain` can replay it on fresh data. An experiment file (see configs/):

    name = "load-etth1"     # registered model; default: the dataset name, "/" -> "-"
    family = "gru"          # lstm | gru | rnn | esn | naive | seasonal_naive | kalman | auto
                            # (default "auto": train the candidates, keep the best; jobs.auto)
    horizon = 24            # required: forecast steps
    [data]                  # exactly one of dataset (bundled), file (CSV/Parquet, relative to
    dataset = "load/etth1"  # this file, with time_col, target_col...) or series (in the store)
    future_covariates = ["temp"]  # columns known over the horizon (weather forecast, promo)
    holidays = "US"         # holiday indicator "holiday:US" as a future covariate ("US-CA")
    [model]                 # lookback, epochs, device, and forecaster config fields
    hidden_size = 64
    [evaluation]            # protocol ("ratio" | "ett"), val_fraction, test_fraction, levels,
                            # covariate_noise (test only: future covariates + noise, see below)
    [gate]                  # metric (mae | mse | rmse | smape | mase) and margin: how much
    margin = 0.01           # (relative) better than the champion a challenger must be
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.dataclasses import dataclass

from training.config_files import ModelName, invalid, read_toml, unknown_key
from training.data.fill import DEFAULT_FILL_LIMIT, DEFAULT_MAX_GAP
from training.errors import ExperimentError

Family = Literal["lstm", "gru", "rnn", "esn", "naive", "seasonal_naive", "kalman", "auto"]
DEFAULT_FAMILY = "auto"  # no family given: train the candidates, keep the best (jobs.auto)
Device = Literal["auto", "cpu", "cuda"]
Protocol = Literal["ratio", "ett"]
GateMetric = Literal["mae", "mse", "rmse", "smape", "mase"]
FAMILIES, DEVICES, PROTOCOLS, GATE_METRICS = map(get_args, (Family, Device, Protocol, GateMetric))
# Config fields the pipeline derives from the data and the spec; an experiment may not set them.
DERIVED_MODEL_KEYS = ("family", "max_horizon", "frequency", "target", "covariates",
                      "future_covariates")  # fmt: skip

Count = Annotated[StrictInt, Field(ge=1)]
Fraction = Annotated[float, Field(strict=True, gt=0, lt=1)]
Margin = Annotated[float, Field(strict=True, ge=0, lt=1)]
Share = Annotated[float, Field(strict=True, ge=0, le=1)]  # fill_limit: share of a column
FillMethod = Literal["interpolate", "ffill", "reject"]  # training.data.fill.FILL_METHODS
Levels = Annotated[tuple[Annotated[StrictInt, Field(gt=0, lt=100)], ...], Field(min_length=1)]
Names = tuple[StrictStr, ...]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainSpec:
    """One training job, validated. Build it with `from_toml`, `from_flags` or `from_dict`
    (they raise ExperimentError); `TrainSpec(...)` raises pydantic's ValidationError."""

    family: Family
    horizon: Count  # forecast steps; also the model's max_horizon
    dataset: StrictStr | None = None  # a bundled dataset ("load/etth1"), or
    data: StrictStr | None = None  # a user CSV/Parquet file, or
    series: Names = ()  # series-store ids (the store's URL is never in the spec: no password)
    time_col: StrictStr | None = None  # time_col ... fill: how to read `data`
    target_col: StrictStr | None = None
    id_col: StrictStr | None = None
    freq: StrictStr | None = None
    fill: FillMethod = "interpolate"
    max_gap: Count = DEFAULT_MAX_GAP  # max_gap, fill_limit: see training.data.fill
    fill_limit: Share = DEFAULT_FILL_LIMIT
    covariates: Names = ()  # past covariate columns
    future_covariates: Names = ()  # columns known over the horizon too (training.data.known)
    holidays: StrictStr | None = None  # "US" / "US-CA": a holiday indicator future covariate
    last_rows: Count | None = None  # keep only the newest rows of each series (None: all)
    lookback: Count | None = None  # None: a default from the frequency and the horizon
    epochs: Count | None = None  # None: the family default
    device: Device = "auto"
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # [model] config fields
    protocol: Protocol = "ratio"  # split by fractions, or "ett": the ETTh1 12/4/4 months
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    levels: Levels = (80, 95)  # central interval levels in percent
    # Test windows read the recorded future covariates (an oracle: perfect foresight of the
    # weather); > 0 adds Gaussian noise of this many column stds to their horizon values.
    covariate_noise: Annotated[float, Field(strict=True, ge=0)] = 0.0
    gate_metric: GateMetric = "mae"  # validation metric of the champion gate (lower: better)
    gate_margin: Margin = 0.01  # relative improvement a challenger needs
    name: ModelName | None = None  # registered model (None: from the dataset or file name)
    source_file: str | None = None  # the experiment file this spec was read from, if any

    @model_validator(mode="after")
    def _across_fields(self) -> Self:
        if sum([self.dataset is not None, self.data is not None, bool(self.series)]) != 1:
            raise ValueError(
                f"dataset={self.dataset!r}, data={self.data!r}, series={list(self.series)!r}: "
                "give exactly one. Fix: pass --dataset NAME (see `forecast datasets`), --data "
                "FILE, or --series ID[,ID...] for the series store"
            )
        if self.data is not None and not (self.time_col and self.target_col):
            raise ValueError(
                f"data={self.data!r} needs time_col and target_col (got {self.time_col!r}, "
                f"{self.target_col!r}). Fix: pass --time-col C --target-col C"
            )
        if derived := sorted(set(self.model) & set(DERIVED_MODEL_KEYS)):
            raise ValueError(
                f"[model] key(s) {', '.join(derived)} are set by the pipeline from the data and "
                "the spec. Fix: remove them (use top-level family/horizon and [data] covariates)"
            )
        if both := sorted(set(self.covariates) & set(self.future_covariates)):
            raise ValueError(
                f"{both} are in both covariates and future_covariates. Fix: list a column known "
                "over the horizon in future_covariates only"
            )
        known_ahead = bool(self.future_covariates or self.holidays)
        if known_ahead and self.protocol == "ett":
            raise ValueError(
                "future_covariates / holidays need protocol 'ratio' (the ETT protocol scores "
                'z-scored channels). Fix: set protocol = "ratio" in [evaluation]'
            )
        if self.covariate_noise and not known_ahead:
            raise ValueError(
                f"covariate_noise={self.covariate_noise} without future covariates does nothing. "
                "Fix: declare future_covariates, or drop covariate_noise"
            )
        known = _model_keys(self.family)
        if unknown := [key for key in self.model if key not in known]:
            raise ValueError("\n".join(f"[model] {k}: {unknown_key(k, known)}" for k in unknown))
        return self

    @property
    def model_name(self) -> str:
        """Registered model (and experiment) name: `name`, else dataset "a/b" -> "a-b"."""
        if self.name:
            return self.name
        if self.dataset:
            return self.dataset.replace("/", "-")
        return re.sub(r"[^A-Za-z0-9._-]", "-", Path(self.data or "data").stem) or "data"

    @property
    def source(self) -> str:
        """Where the data comes from: "dataset", "file" or "store"."""
        if self.series:
            return "store"
        return "dataset" if self.dataset else "file"

    @property
    def data_label(self) -> str:
        """The dataset name, the file path or the store ids, for tags and messages."""
        if self.series:
            return "store:" + ",".join(self.series)
        return self.dataset or str(self.data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists); `from_dict` inverts it."""
        out = dataclasses.asdict(self)
        out["model"] = dict(self.model)
        for key in ("covariates", "future_covariates", "series", "levels"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str | None = "spec") -> TrainSpec:
        """Rebuild a spec from `to_dict` output (e.g. a run's spec.json); unknown keys rejected.

        Raises:
            ExperimentError: naming `where`, for unknown keys or invalid values.
        """
        try:
            return cls(**d)
        except ValidationError as exc:
            raise invalid(exc, where, cls) from None

    @classmethod
    def from_flags(cls, **flags: Any) -> TrainSpec:
        """Build a spec from CLI flags; flags left at None take the spec's defaults.

        Raises:
            ExperimentError: when --family or --horizon is missing, or any value is invalid.
        """
        given = {k: v for k, v in flags.items() if v is not None}
        if "horizon" not in given:
            raise ExperimentError(
                "--horizon is missing. Fix: pass --horizon (or an experiment file with --config)"
            )
        given.setdefault("family", DEFAULT_FAMILY)
        return cls.from_dict(given, None)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainSpec:
        """Read an experiment file; `overrides` (CLI flags that were given) win over its values.

        Raises:
            ExperimentError: for a missing/unreadable file, TOML syntax, unknown keys or values;
                one line per problem, naming the file, the table, the key and the value.
        """
        doc = read_toml(Path(path), "experiment file", "configs/load-etth1-gru.toml")
        return cls.from_document(doc, Path(path), **overrides)

    @classmethod
    def from_document(cls, doc: dict[str, Any], file: Path, **overrides: Any) -> TrainSpec:
        """`from_toml` for `doc`, the parsed text of experiment file `file`."""
        doc.setdefault("family", DEFAULT_FAMILY)
        try:
            tables = ExperimentFile.model_validate(doc)
        except ValidationError as exc:
            raise invalid(exc, str(file), ExperimentFile) from None
        kwargs: dict[str, Any] = {}
        for table, keys in FILE_KEYS.items():
            given = (getattr(tables, table) if table else tables).model_dump(exclude_unset=True)
            kwargs |= {field: given[key] for key, field in keys.items() if key in given}
        if "data" in kwargs and not Path(kwargs["data"]).is_absolute():
            kwargs["data"] = str(file.parent / kwargs["data"])
        model = dict(tables.model.model_extra or {})
        given = {key: value for key, value in overrides.items() if value is not None}
        model.update(given.pop("model", {}))
        kwargs |= given
        if "data" in given:
            kwargs.pop("dataset", None)
        elif "dataset" in given:
            for key in ("data", "time_col", "target_col", "id_col", "freq"):
                kwargs.pop(key, None)
        return cls.from_dict({**kwargs, "model": model, "source_file": str(file)}, str(file))


def _model_keys(family: str) -> list[str]:
    """The `[model]` keys `family`'s config takes (every family's for another family)."""
    from models import registry

    names = (family,) if family in registry.FAMILIES else registry.FAMILIES  # "auto": all
    classes = dict.fromkeys(registry.family(name).config for name in names)
    keys = dict.fromkeys(f.name for c in classes for f in dataclasses.fields(c))
    return [key for key in keys if key not in DERIVED_MODEL_KEYS]


# --- the experiment file -------------------------------------------------------------------

# Each table ("" = top level) of an experiment file: its keys and the TrainSpec field each sets.
# [model] also takes forecaster config fields: they go to `TrainSpec.model`.
FILE_KEYS: dict[str, dict[str, str]] = {
    "": {"name": "name", "family": "family", "horizon": "horizon"},
    "data": {
        "file": "data",
        **{k: k for k in ("dataset", "series", "time_col", "target_col", "id_col", "freq")},
        **{k: k for k in ("fill", "max_gap", "fill_limit", "covariates", "last_rows")},
        **{k: k for k in ("future_covariates", "holidays")},
    },
    "model": {k: k for k in ("lookback", "epochs", "device")},
    "evaluation": {
        k: k for k in ("protocol", "val_fraction", "test_fraction", "levels", "covariate_noise")
    },
    "gate": {"metric": "gate_metric", "margin": "gate_margin"},
}


def _file_model(name: str, table: str, **tables: Any) -> Any:
    """A pydantic model of one table: its keys typed and checked as the TrainSpec fields."""
    spec = TrainSpec.__pydantic_fields__  # type: ignore[attr-defined]
    keys: dict[str, Any] = {k: (spec[f].annotation, spec[f]) for k, f in FILE_KEYS[table].items()}
    extra: Literal["allow", "forbid"] = "allow" if table == "model" else "forbid"
    return create_model(name, __config__=ConfigDict(extra=extra), **keys, **tables)


ExperimentFile = _file_model(
    "ExperimentFile",
    "",
    **{t: (m, Field(default_factory=m)) for t in FILE_KEYS if t for m in [_file_model(t, t)]},
)
