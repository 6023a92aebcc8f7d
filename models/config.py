"""Frozen, validated configs: the only constructor argument of each family (recurrent, ESN,
baselines).

`to_dict` / `from_dict` round-trip through JSON (config.json); unknown keys and wrong types are
refused with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Self

from models.errors import ConfigError
from models.features import parse_frequency, season_length
from models.scaling import NORM_MODES

RECURRENT_FAMILIES = ("lstm", "gru", "rnn")
BASELINE_FAMILIES = ("naive", "seasonal_naive", "kalman")
DECODERS = ("direct", "segments", "seq2seq")
DEVICES = ("auto", "cpu", "cuda")
LOSSES = ("mse", "mae", "huber")
LR_SCHEDULES = ("constant", "plateau")

# JSON type check of a scalar field: hint -> (accepted types, what the message asks for)
_SCALARS: dict[Any, tuple[Any, str]] = {
    bool: (bool, "true or false"),
    int: (int, "an integer"),
    float: ((int, float), "a number"),
    str: (str, "a string"),
}


def _check_value(name: str, value: Any, hint: Any) -> Any:
    """Check one JSON value against a field's type hint; return it as the field's type."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        (item, *_rest) = typing.get_args(hint)
        return tuple(_check_value(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(name, value, inner[0])
    if hint not in _SCALARS:
        return value
    accepted, expected = _SCALARS[hint]
    # bool is an int subclass, but true is not a number here
    if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")
    return float(value) if hint is float else value


def require(ok: bool, message: str) -> None:
    """Raise ConfigError(`message`) unless `ok`: the one-line check every config uses."""
    if not ok:
        raise ConfigError(message)


def check_device_and_levels(device: str, levels: tuple[int, ...]) -> None:
    """The checks every family's config shares: a known device and levels in (0, 100)."""
    require(
        device in DEVICES or device.startswith("cuda:"),
        f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'",
    )
    for level in levels:
        require(
            0 < level < 100,
            f"levels: {level} is not strictly between 0 and 100; use e.g. [80, 95]",
        )


@dataclass(frozen=True)
class FamilyConfig:
    """What every family's config holds first: what the model reads and emits.

    `family`; `lookback` steps read; `max_horizon` steps emitted per pass; the series'
    `frequency`, `target` name, past `covariates` (names, in input order), whether
    `calendar` features of the timestamps are inputs, and `future_covariates` (names, in
    input order): columns known over the horizon too (weather forecasts, holidays, promotions).
    """

    family: str = "gru"
    lookback: int = 336
    max_horizon: int = 96
    frequency: str = "h"
    target: str = "value"
    covariates: tuple[str, ...] = ()
    calendar: bool = False
    future_covariates: tuple[str, ...] = ()

    def check_shared(self) -> None:
        """The rules on the shared fields (each family's __post_init__ calls it)."""
        require(self.lookback >= 2, f"lookback {self.lookback} must be >= 2")
        require(self.max_horizon >= 1, f"max_horizon {self.max_horizon} must be >= 1")
        parse_frequency(self.frequency)
        require(
            len(set(self.covariates)) == len(self.covariates),
            f"covariates {list(self.covariates)} repeat a name; list each column once",
        )
        require(
            len(set(self.future_covariates)) == len(self.future_covariates),
            f"future_covariates {list(self.future_covariates)} repeat a name; list each once",
        )
        both = sorted(set(self.covariates) & set(self.future_covariates))
        require(
            not both,
            f"{both} are listed in both covariates and future_covariates; a column known "
            "over the horizon belongs in future_covariates only",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists); `from_dict(to_dict())` gives an equal config."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from a JSON-style dict.

        Raises:
            ConfigError: for an unknown key (listing the known ones) or a value of the wrong type.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown} for {cls.__name__}; "
                f"known keys: {', '.join(names)}"
            )
        return cls(**{k: _check_value(k, v, hints[k]) for k, v in data.items()})


@dataclass(frozen=True)
class RecurrentConfig(FamilyConfig):
    """Everything that defines an LSTM / GRU / Elman RNN forecaster and its training.

    Model: `family` picks nn.LSTM, nn.GRU or nn.RNN (`nonlinearity` tanh or relu, `irnn_init`
    for identity recurrent weights). The look-back is cut into segments of `segment_length`
    steps, each embedded by Linear+ReLU (1 = one recurrent step per time step). `decoder`:
    "direct" (linear head on the final state), "segments" (SegRNN-style parallel decoding of
    output segments from learned position embeddings) or "seq2seq" (a recurrent decoder over
    the horizon fed future calendar features). `norm`: per-window normalisation.

    Training: `loss` ("mse", "mae" or "huber", in normalised units; early stopping watches the
    same loss), AdamW (`lr`, `weight_decay`), `batch_size`, up to `epochs` with early stopping
    after `patience` epochs without validation improvement, gradient-norm clipping at
    `grad_clip` (0 = off), truncated BPTT every `tbptt` recurrent steps (0 = off).
    `lr_schedule` "plateau" halves the rate after each epoch without improvement; `max_epochs`
    > `epochs` lets the budget grow while the last epoch is still the best, and `time_budget`
    (seconds, 0 = none) ends training after the epoch that spends it (models.loop; the
    defaults keep a constant rate, a fixed budget and no time limit). `epoch_windows` (0 =
    every window) makes an epoch a fresh random sample of that many windows, for panels whose
    full pass would take hours (early stopping and the budget then count such epochs).

    The defaults are a SegRNN-style GRU tuned on ETTh1 (hourly, z-scored OT, test MSE 0.026 /
    0.053 / 0.068 at H = 24 / 96 / 192 against naive 0.034 / 0.069 / 0.092). Longer horizons
    want a longer look-back: lookback=720 for H=336 (0.068), and lookback=720, dropout=0.5,
    lr=3e-4 for H=720 (0.078). Early stopping usually keeps epoch 1-2 at lr=1e-3.
    """

    family: str = "gru"
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    bidirectional: bool = False
    nonlinearity: str = "tanh"
    irnn_init: bool = False
    segment_length: int = 24
    decoder: str = "segments"
    linear_skip: bool = False
    norm: str = "last"
    loss: str = "mse"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    lr_schedule: str = "constant"
    max_epochs: int = 0
    time_budget: float = 0.0
    epoch_windows: int = 0
    grad_clip: float = 1.0
    tbptt: int = 0
    seed: int = 0
    device: str = "auto"
    levels: tuple[int, ...] = (80, 95)

    def __post_init__(self) -> None:
        require(
            self.family in RECURRENT_FAMILIES,
            f"family {self.family!r} is not recurrent; use one of {RECURRENT_FAMILIES}",
        )
        self.check_shared()
        require(self.hidden_size >= 1, f"hidden_size {self.hidden_size} must be >= 1")
        require(self.num_layers >= 1, f"num_layers {self.num_layers} must be >= 1")
        require(0.0 <= self.dropout < 1.0, f"dropout {self.dropout} must be in [0, 1)")
        require(
            self.nonlinearity in ("tanh", "relu"),
            f"nonlinearity {self.nonlinearity!r} is not supported; use 'tanh' or 'relu'",
        )
        require(
            self.nonlinearity == "tanh" or self.family == "rnn",
            f"nonlinearity {self.nonlinearity!r} applies only to family 'rnn' "
            f"(got family {self.family!r}); leave it 'tanh'",
        )
        require(
            not self.irnn_init or self.family == "rnn",
            f"irnn_init=True applies only to family 'rnn' (got {self.family!r}); set it False",
        )
        require(self.segment_length >= 1, f"segment_length {self.segment_length} must be >= 1")
        require(
            self.lookback % self.segment_length == 0,
            f"lookback {self.lookback} is not a multiple of segment_length "
            f"{self.segment_length}; pick a lookback like "
            f"{max(1, self.lookback // self.segment_length) * self.segment_length}",
        )
        require(
            self.decoder in DECODERS,
            f"decoder {self.decoder!r} is not supported; use one of {DECODERS}",
        )
        require(self.norm in NORM_MODES, f"norm {self.norm!r} is not supported; use {NORM_MODES}")
        require(self.loss in LOSSES, f"loss {self.loss!r} is not supported; use one of {LOSSES}")
        require(self.epochs >= 1, f"epochs {self.epochs} must be >= 1")
        require(self.batch_size >= 1, f"batch_size {self.batch_size} must be >= 1")
        require(self.lr > 0, f"lr {self.lr} must be > 0")
        require(self.weight_decay >= 0, f"weight_decay {self.weight_decay} must be >= 0")
        require(self.patience >= 1, f"patience {self.patience} must be >= 1")
        require(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule {self.lr_schedule!r} is not supported; use one of {LR_SCHEDULES}",
        )
        require(self.time_budget >= 0, f"time_budget {self.time_budget} must be >= 0 (0 = none)")
        require(
            self.max_epochs == 0 or self.max_epochs >= self.epochs,
            f"max_epochs {self.max_epochs} is below epochs {self.epochs}; use 0 (no extension) "
            f"or a value >= {self.epochs}",
        )
        require(
            self.epoch_windows >= 0,
            f"epoch_windows {self.epoch_windows} must be >= 0 (0 = every window each epoch)",
        )
        require(self.grad_clip >= 0, f"grad_clip {self.grad_clip} must be >= 0 (0 = off)")
        require(self.tbptt >= 0, f"tbptt {self.tbptt} must be >= 0 (0 = off)")
        require(
            not (self.tbptt and self.bidirectional),
            "tbptt cannot be used with bidirectional=True (the backward pass needs the whole "
            "window); set tbptt=0 or bidirectional=False",
        )
        check_device_and_levels(self.device, self.levels)


ESN_NORMS = ("last", "revin", "none")


@dataclass(frozen=True)
class ESNConfig(FamilyConfig):
    """Everything that defines an echo state network forecaster.

    Reservoir: `reservoir_size` units, `spectral_radius` of W, `leak_rate` a, `input_scaling`
    of W_in and b, `density` of W's non-zeros, `washout` states dropped per training series
    (and the warm-up context of predict). Readout: `lookback` lags, `max_horizon` outputs, ridge
    penalty `ridge` (one value, or several tried on validation; the penalty is per window on
    standardised features). `norm`: "last", "revin" or "none" (see the module docstring).
    The defaults are the settings picked on ETTh1's validation windows (see BENCHMARKS.md).
    """

    family: str = "esn"
    reservoir_size: int = 200
    spectral_radius: float = 0.9
    leak_rate: float = 0.3
    input_scaling: float = 0.3
    density: float = 0.1
    ridge: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    washout: int = 96
    norm: str = "last"
    seed: int = 0
    device: str = "auto"
    levels: tuple[int, ...] = (80, 95)

    def __post_init__(self) -> None:
        require(self.family == "esn", f"family {self.family!r} is not 'esn'; use 'esn'")
        self.check_shared()
        require(self.reservoir_size >= 1, f"reservoir_size {self.reservoir_size} must be >= 1")
        require(
            self.spectral_radius > 0,
            f"spectral_radius {self.spectral_radius} must be > 0 (typically 0.5 .. 1.0)",
        )
        require(0 < self.leak_rate <= 1, f"leak_rate {self.leak_rate} must be in (0, 1]")
        require(self.input_scaling > 0, f"input_scaling {self.input_scaling} must be > 0")
        require(0 < self.density <= 1, f"density {self.density} must be in (0, 1]")
        require(
            len(self.ridge) >= 1 and all(r > 0 for r in self.ridge),
            f"ridge {list(self.ridge)} must hold one or more values > 0, e.g. [0.001, 0.01]",
        )
        require(self.washout >= 1, f"washout {self.washout} must be >= 1")
        require(
            self.washout <= self.lookback,
            f"washout {self.washout} exceeds lookback {self.lookback}: predict() warms the "
            f"reservoir over the last washout steps of a history that may be only lookback "
            f"long; set washout <= {self.lookback}",
        )
        require(self.norm in ESN_NORMS, f"norm {self.norm!r} is not supported; use {ESN_NORMS}")
        check_device_and_levels(self.device, self.levels)


@dataclass(frozen=True)
class BaselineConfig(FamilyConfig):
    """A baseline family: "naive" (random walk), "seasonal_naive" or "kalman" (local level).

    Baselines read only the target; declared `covariates` and `calendar` are still required
    at predict time, so a baseline accepts exactly the inputs of the families it stands in
    for. `lookback` is what the Kalman filter runs over and what the interval scale is measured
    on. `season` (seasonal_naive only): steps per season, 0 = the frequency's season length.
    `device` holds the (few) buffers; the arithmetic is NumPy on the CPU.
    """

    family: str = "naive"
    season: int = 0
    device: str = "auto"
    levels: tuple[int, ...] = (80, 95)

    def __post_init__(self) -> None:
        require(
            self.family in BASELINE_FAMILIES,
            f"family {self.family!r} is not a baseline; use one of {BASELINE_FAMILIES}",
        )
        self.check_shared()
        require(self.season >= 0, f"season {self.season} must be >= 0 (0 = from frequency)")
        require(
            self.season == 0 or self.family == "seasonal_naive",
            f"season {self.season} applies only to family 'seasonal_naive' (got "
            f"{self.family!r}); leave it 0",
        )
        require(
            self.family != "seasonal_naive" or self.lookback >= self.season_steps,
            f"lookback {self.lookback} is shorter than the season {self.season_steps}; "
            f"seasonal_naive repeats the last season, so set lookback >= {self.season_steps}",
        )
        check_device_and_levels(self.device, self.levels)

    @property
    def season_steps(self) -> int:
        """m: `season`, or the frequency's season length when `season` is 0."""
        return self.season or season_length(self.frequency)
