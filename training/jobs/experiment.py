"""The training spec: what to train on, which family, how to evaluate and gate it.

A `TrainSpec` comes from an experiment file (TOML, read with `tomllib`) or from CLI flags, is
validated once here, and travels with the run as `spec.json` so that `forecast retrain` can
replay it on fresh data. Experiment file layout (every key optional unless marked):

    name = "load-etth1"            # registered model; default: the dataset name, "/" -> "-"
    family = "gru"                 # required: lstm | gru | rnn | esn
    horizon = 24                   # required: forecast steps

    [data]                         # exactly one of `dataset`, `file` or `series`
    dataset = "load/etth1"         # a bundled dataset
    file = "my.csv"                # or a user CSV/Parquet (relative to the TOML file)
    series = ["meter-1"]           # or series ids in the series store ($FORECAST_DATABASE_URL)
    time_col = "Date"              # file only (required with `file`)
    target_col = "Close"           # file only (required with `file`)
    id_col = "store"               # file only
    freq = "B"                     # file only; inferred when absent
    fill = "interpolate"           # file only: the NaN / gap policy of training.data.catalogue
    covariates = ["HUFL"]          # past covariate columns
    last_rows = 3000               # keep only the newest rows of each series

    [model]                        # forecaster config fields (models.config), e.g.
    lookback = 168
    epochs = 20
    hidden_size = 64

    [evaluation]
    protocol = "ratio"             # ratio | ett
    val_fraction = 0.1
    test_fraction = 0.2
    levels = [80, 95]

    [gate]
    metric = "mae"                 # mae | mse | rmse | smape | mase
    margin = 0.01                  # the challenger must be this much (relative) better
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import ExperimentError

FAMILIES = ("lstm", "gru", "rnn", "esn")
PROTOCOLS = ("ratio", "ett")
DEVICES = ("auto", "cpu", "cuda")
GATE_METRICS = ("mae", "mse", "rmse", "smape", "mase")
# Config fields the pipeline derives from the data and the spec; an experiment may not set them.
DERIVED_MODEL_KEYS = ("family", "max_horizon", "frequency", "target", "covariates")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_TOP_KEYS = ("name", "family", "horizon", "data", "model", "evaluation", "gate")
_DATA_KEYS = (
    "dataset",
    "file",
    "time_col",
    "target_col",
    "id_col",
    "freq",
    "fill",
    "covariates",
    "last_rows",
    "series",
)
_EVAL_KEYS = ("protocol", "val_fraction", "test_fraction", "levels")
_GATE_KEYS = ("metric", "margin")


@dataclass(frozen=True)
class TrainSpec:
    """One training job, validated.

    Attributes:
        family: "lstm", "gru", "rnn" or "esn".
        horizon: forecast steps (>= 1); also the model's max_horizon.
        dataset: bundled dataset name ("load/etth1"), or None when `data` is given.
        data: path of a user CSV/Parquet file, or None.
        series: series-store ids to train on (the store's URL comes from the environment
            or --database-url at run time, never from the spec, so no password is logged).
        time_col, target_col, id_col, freq, fill: how to read `data`.
        covariates: past covariate columns.
        last_rows: keep only the newest `last_rows` rows of each series (None: all).
        lookback: history steps the model reads (None: a default from frequency and horizon).
        epochs: training epochs (None: the family default).
        device: "auto", "cpu" or "cuda".
        model: further forecaster config fields (validated by models.config on build).
        protocol: "ratio" (split by fractions) or "ett" (the standard ETTh1 12/4/4 months).
        val_fraction, test_fraction: ratio split shares.
        levels: central interval levels in percent.
        gate_metric: validation metric the champion gate compares (lower is better).
        gate_margin: relative improvement the challenger needs, in [0, 1).
        name: registered model name (None: derived from dataset or file name).
        source_file: the experiment file this spec was read from, if any.
    """

    family: str
    horizon: int
    dataset: str | None = None
    data: str | None = None
    series: tuple[str, ...] = ()
    time_col: str | None = None
    target_col: str | None = None
    id_col: str | None = None
    freq: str | None = None
    fill: str = "interpolate"
    covariates: tuple[str, ...] = ()
    last_rows: int | None = None
    lookback: int | None = None
    epochs: int | None = None
    device: str = "auto"
    model: Mapping[str, Any] = field(default_factory=dict)
    protocol: str = "ratio"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    levels: tuple[int, ...] = (80, 95)
    gate_metric: str = "mae"
    gate_margin: float = 0.01
    name: str | None = None
    source_file: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

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
        out["covariates"] = list(self.covariates)
        out["series"] = list(self.series)
        out["levels"] = list(self.levels)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSpec:
        """Rebuild a spec from `to_dict` output (e.g. a run's spec.json); unknown keys rejected."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ExperimentError(f"spec keys {unknown} are unknown. Fix: use only {sorted(known)}")
        kwargs = dict(d)
        for key in ("covariates", "levels", "series"):
            if key in kwargs and isinstance(kwargs[key], list):
                kwargs[key] = tuple(kwargs[key])
        if "model" in kwargs:
            kwargs["model"] = dict(kwargs["model"] or {})
        return cls(**kwargs)

    @classmethod
    def from_flags(cls, **flags: Any) -> TrainSpec:
        """Build a spec from CLI flags; flags left at None take the spec's defaults.

        Raises:
            ExperimentError: when --family or --horizon is missing, or any value is invalid.
        """
        given = {k: v for k, v in flags.items() if v is not None}
        for key in ("family", "horizon"):
            if key not in given:
                raise ExperimentError(
                    f"--{key} is missing. Fix: pass --{key} (or an experiment file with --config)"
                )
        return cls(**given)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainSpec:
        """Read an experiment file; `overrides` (CLI flags that were given) win over its values.

        Raises:
            ExperimentError: for a missing/unreadable file, TOML syntax, unknown keys or values.
        """
        file = Path(path)
        try:
            doc = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExperimentError(
                f"--config {str(file)!r}: file not found. Fix: pass an existing TOML file, "
                "e.g. configs/load-etth1-gru.toml"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ExperimentError(
                f"--config {str(file)!r}: invalid TOML ({exc}). Fix the syntax"
            ) from None
        kwargs = _kwargs_from_doc(doc, file)
        model = dict(kwargs.pop("model", {}))
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "model":
                model.update(value)
            else:
                kwargs[key] = value
        if overrides.get("data") is not None:
            kwargs.pop("dataset", None)
        elif overrides.get("dataset") is not None:
            for key in ("data", "time_col", "target_col", "id_col", "freq"):
                kwargs.pop(key, None)
        return cls(model=model, source_file=str(file), **kwargs)


def _section(
    doc: Mapping[str, Any], key: str, allowed: Sequence[str], where: str
) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ExperimentError(f"{where}: [{key}] must be a table, got {value!r}. Fix: [{key}]")
    _reject_unknown(value, allowed, f"{where} [{key}]")
    return dict(value)


def _reject_unknown(d: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ExperimentError(
            f"{where}: unknown key(s) {', '.join(unknown)}. Fix: use only {', '.join(allowed)}"
        )


def _kwargs_from_doc(doc: Mapping[str, Any], file: Path) -> dict[str, Any]:
    where = str(file)
    _reject_unknown(doc, _TOP_KEYS, where)
    data = _section(doc, "data", _DATA_KEYS, where)
    model = doc.get("model", {})
    if not isinstance(model, dict):
        raise ExperimentError(f"{where}: [model] must be a table, got {model!r}. Fix: [model]")
    evaluation = _section(doc, "evaluation", _EVAL_KEYS, where)
    gate = _section(doc, "gate", _GATE_KEYS, where)
    kwargs: dict[str, Any] = {k: doc[k] for k in ("name", "family", "horizon") if k in doc}
    for key in ("family", "horizon"):
        if key not in kwargs:
            raise ExperimentError(f"{where}: missing top-level key {key!r}. Fix: add {key} = ...")
    if "file" in data:
        file_path = Path(data.pop("file"))
        kwargs["data"] = str(file_path if file_path.is_absolute() else file.parent / file_path)
    for key in ("covariates", "series"):
        if key in data:
            data[key] = tuple(data[key])
    kwargs.update(data)
    model = dict(model)
    for key in ("lookback", "epochs", "device"):
        if key in model:
            kwargs[key] = model.pop(key)
    kwargs["model"] = model
    if "levels" in evaluation:
        evaluation["levels"] = tuple(evaluation["levels"])
    kwargs.update(evaluation)
    if "metric" in gate:
        kwargs["gate_metric"] = gate["metric"]
    if "margin" in gate:
        kwargs["gate_margin"] = gate["margin"]
    return kwargs


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(spec: TrainSpec) -> None:
    if spec.family not in FAMILIES:
        raise ExperimentError(
            f"family={spec.family!r} is unknown. Fix: use one of {', '.join(FAMILIES)}"
        )
    if not _is_int(spec.horizon) or spec.horizon < 1:
        raise ExperimentError(
            f"horizon={spec.horizon!r}: must be an integer >= 1. Fix: pass e.g. --horizon 24"
        )
    given = [spec.dataset is not None, spec.data is not None, bool(spec.series)]
    if sum(given) != 1:
        raise ExperimentError(
            f"dataset={spec.dataset!r}, data={spec.data!r}, series={list(spec.series)!r}: give "
            "exactly one. Fix: pass --dataset NAME (see `forecast datasets`), --data FILE, or "
            "--series ID[,ID...] for the series store"
        )
    if spec.data is not None and not (spec.time_col and spec.target_col):
        raise ExperimentError(
            f"data={spec.data!r} needs time_col and target_col (got {spec.time_col!r}, "
            f"{spec.target_col!r}). Fix: pass --time-col C --target-col C"
        )
    for key in ("lookback", "epochs", "last_rows"):
        value = getattr(spec, key)
        if value is not None and (not _is_int(value) or value < 1):
            raise ExperimentError(f"{key}={value!r}: must be an integer >= 1 or unset")
    if spec.device not in DEVICES:
        raise ExperimentError(
            f"device={spec.device!r} is unknown. Fix: use one of {', '.join(DEVICES)}"
        )
    if spec.protocol not in PROTOCOLS:
        raise ExperimentError(
            f"protocol={spec.protocol!r} is unknown. Fix: use one of {', '.join(PROTOCOLS)}"
        )
    for key in ("val_fraction", "test_fraction"):
        value = getattr(spec, key)
        if not isinstance(value, int | float) or not 0.0 < value < 1.0:
            raise ExperimentError(f"{key}={value!r}: must lie in (0, 1). Fix: use e.g. 0.1")
    if not spec.levels or any(not _is_int(v) or not 0 < v < 100 for v in spec.levels):
        raise ExperimentError(
            f"levels={list(spec.levels)!r}: each must be an integer in (0, 100). Fix: [80, 95]"
        )
    if spec.gate_metric not in GATE_METRICS:
        raise ExperimentError(
            f"gate metric={spec.gate_metric!r} is unknown. Fix: use one of "
            f"{', '.join(GATE_METRICS)}"
        )
    if not isinstance(spec.gate_margin, int | float) or not 0.0 <= spec.gate_margin < 1.0:
        raise ExperimentError(
            f"gate margin={spec.gate_margin!r}: must lie in [0, 1). Fix: use e.g. 0.01 (1%)"
        )
    if spec.name is not None and not _NAME.match(spec.name):
        raise ExperimentError(
            f"name={spec.name!r}: use letters, digits, '.', '_' or '-' (start with a letter or "
            "digit, at most 128). Fix: e.g. --name my-stock"
        )
    derived = sorted(set(spec.model) & set(DERIVED_MODEL_KEYS))
    if derived:
        raise ExperimentError(
            f"[model] key(s) {', '.join(derived)} are set by the pipeline from the data and "
            "the spec. Fix: remove them (use top-level family/horizon and [data] covariates)"
        )
