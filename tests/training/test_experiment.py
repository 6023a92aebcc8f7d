"""TrainSpec: experiment files (TOML), CLI flags, validation messages, and every bundled config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.config import BASELINE_FAMILIES, BaselineConfig, ESNConfig, RecurrentConfig
from training.errors import ExperimentError
from training.jobs.experiment import FAMILIES, TrainSpec
from training.jobs.preparation import build_config, default_lookback, fit_series, load_frame

REPO = Path(__file__).resolve().parents[2]

FULL = """
name = "my-load"
family = "lstm"
horizon = 12

[data]
dataset = "load/etth1"
covariates = ["HUFL"]
last_rows = 900

[model]
lookback = 48
epochs = 3
device = "cpu"
hidden_size = 8

[evaluation]
protocol = "ratio"
val_fraction = 0.15
test_fraction = 0.25
levels = [50, 90]

[gate]
metric = "mse"
margin = 0.05
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_file_is_read_into_spec(tmp_path: Path) -> None:
    spec = TrainSpec.from_toml(write(tmp_path, FULL))
    assert spec.name == "my-load"
    assert spec.family == "lstm"
    assert spec.horizon == 12
    assert spec.dataset == "load/etth1"
    assert spec.covariates == ("HUFL",)
    assert spec.last_rows == 900
    assert (spec.lookback, spec.epochs, spec.device) == (48, 3, "cpu")
    assert dict(spec.model) == {"hidden_size": 8}
    assert (spec.val_fraction, spec.test_fraction, spec.levels) == (0.15, 0.25, (50, 90))
    assert (spec.gate_metric, spec.gate_margin) == ("mse", 0.05)
    assert spec.source_file == str(tmp_path / "exp.toml")
    assert spec.model_name == "my-load"


def test_flags_override_file_values(tmp_path: Path) -> None:
    spec = TrainSpec.from_toml(write(tmp_path, FULL), horizon=6, family="gru", epochs=None)
    assert (spec.horizon, spec.family, spec.epochs) == (6, "gru", 3)


def test_data_flag_replaces_the_file_dataset(tmp_path: Path) -> None:
    spec = TrainSpec.from_toml(
        write(tmp_path, FULL), data="x.csv", time_col="Date", target_col="Close"
    )
    assert spec.dataset is None
    assert spec.data == "x.csv"


def test_file_path_is_relative_to_the_experiment_file(tmp_path: Path) -> None:
    text = 'family = "gru"\nhorizon = 5\n[data]\nfile = "prices.csv"\ntime_col = "Date"\n'
    text += 'target_col = "Close"\nfreq = "B"\n'
    spec = TrainSpec.from_toml(write(tmp_path, text))
    assert spec.data == str(tmp_path / "prices.csv")
    assert spec.model_name == "prices"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "colour = 1\n" + FULL,
            "exp.toml: colour: unknown key; Fix: use one of name, family, horizon, data, model, "
            "evaluation, gate",
        ),
        (
            FULL.replace("last_rows = 900", "last_row = 900"),
            "exp.toml: [data] last_row: unknown key; did you mean last_rows?",
        ),
        (
            FULL.replace("hidden_size = 8", "hiden_size = 8"),
            "exp.toml: [model] hiden_size: unknown key; did you mean hidden_size?",
        ),
        (
            FULL.replace("hidden_size = 8", "reservoir_size = 8"),
            "[model] reservoir_size: unknown key; Fix: use one of lookback, calendar, hidden_size",
        ),
        (FULL.replace('metric = "mse"', 'metrics = "mse"'), "[gate] metrics: unknown key; did"),
        (
            FULL.replace('protocol = "ratio"', 'protokol = "ratio"'),
            "[evaluation] protokol: unknown key; did you mean protocol?",
        ),
        (FULL.replace("[gate]", "gate = 3\n[gate]"), "[evaluation] gate: unknown key; Fix"),
        (FULL.replace("[data]", "data = 3\n[dat]"), "exp.toml: dat: unknown key; did you mean"),
        (FULL.replace("horizon = 12\n", ""), "exp.toml: horizon: missing. Fix: add horizon = ..."),
        (
            FULL.replace('family = "lstm"', 'family = "transformer"'),
            "family = 'transformer': input should be 'lstm', 'gru', 'rnn', 'esn'",
        ),
        (FULL.replace("horizon = 12", "horizon = 0"), "horizon = 0: input should be greater"),
        (FULL.replace("margin = 0.05", "margin = 1.5"), "[gate] margin = 1.5: input should be"),
        (
            FULL.replace('metric = "mse"', 'metric = "r2"'),
            "[gate] metric = 'r2': input should be 'mae'",
        ),
        (FULL.replace('"ratio"', '"kfold"'), "[evaluation] protocol = 'kfold': input should be"),
        (FULL.replace("epochs = 3", "epochs = true"), "[model] epochs = True: input should be"),
        (FULL.replace("900", '"900"'), "[data] last_rows = '900': input should be a valid int"),
        (FULL.replace("[50, 90]", "[50, 100]"), "[evaluation] levels[1] = 100: input should be"),
        (FULL.replace("hidden_size = 8", 'frequency = "h"'), "[model] key(s) frequency are set"),
        (
            FULL.replace("horizon = 12", "horizon = [1"),
            "exp.toml: invalid TOML: Unclosed array (at line 6",
        ),
    ],
)
def test_bad_files_are_rejected_with_the_key_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ExperimentError) as info:
        TrainSpec.from_toml(write(tmp_path, text))
    assert message in str(info.value)


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    text = FULL.replace("last_rows = 900", "last_row = 900").replace("margin = 0.05", "margin = 2")
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as info:
        TrainSpec.from_toml(path)
    assert str(info.value).splitlines() == [
        f"{path}: [data] last_row: unknown key; did you mean last_rows?",
        f"{path}: [gate] margin = 2: input should be less than 1",
    ]


def test_missing_file_names_the_path() -> None:
    with pytest.raises(ExperimentError, match=r"--config 'nope.toml': file not found"):
        TrainSpec.from_toml("nope.toml")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"family": "gru"}, "--horizon is missing"),
        (
            {"family": "gru", "horizon": 5},
            "dataset=None, data=None, series=[]: give exactly one. Fix: pass --dataset NAME",
        ),
        (
            {"family": "gru", "horizon": 5, "data": "x.csv"},
            "data='x.csv' needs time_col and target_col",
        ),
        (
            {"family": "gru", "horizon": -1, "dataset": "load/etth1"},
            "horizon = -1: input should be greater than or equal to 1",
        ),
        (
            {"family": "cnn", "horizon": 5, "dataset": "load/etth1"},
            "family = 'cnn': input should be 'lstm', 'gru', 'rnn', 'esn'",
        ),
        (
            {"family": "gru", "horizon": 5, "dataset": "load/etth1", "name": "bad name"},
            "name = 'bad name': a model name has letters, digits, '.', '_' or '-'",
        ),
        (
            {"family": "gru", "horizon": 5, "dataset": "load/etth1", "device": "tpu"},
            "device = 'tpu': input should be 'auto', 'cpu' or 'cuda'",
        ),
        (
            {"family": "gru", "horizon": 5, "dataset": "load/etth1", "levels": (80, 100)},
            "levels[1] = 100: input should be less than 100",
        ),
    ],
)
def test_bad_flags_are_rejected(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ExperimentError) as info:
        TrainSpec.from_flags(**flags)
    assert message in str(info.value)


def test_spec_round_trips_through_json() -> None:
    spec = TrainSpec(
        family="esn",
        horizon=4,
        dataset="demand/sales-weekly",
        covariates=(),
        model={"reservoir_size": 50},
        levels=(80,),
    )
    again = TrainSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.model_name == "demand-sales-weekly"


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ExperimentError, match=r"^spec: colour: unknown key; Fix: use one of fam"):
        TrainSpec.from_dict({"family": "gru", "horizon": 2, "dataset": "x", "colour": 1})


EXPERIMENTS = sorted(
    p for p in (REPO / "configs").glob("*.toml") if p.stem.rsplit("-", 1)[-1] in FAMILIES
)


# What `forecast load-series` seeds each store-backed config's series with (configs/live-*).
SEEDS = {"bike-hourly": "demand/bike-hourly", "stock-goog": "stock/goog"}


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A series store holding the series the store-backed configs train on."""
    from training.data.catalogue import load_dataset
    from training.store import SeriesStore

    url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'series.db'}"
    with SeriesStore(url, max_batch=50_000) as store:
        for series_id, dataset in SEEDS.items():
            data = load_dataset(dataset)
            store.upsert_series(series_id, frequency=data.frequency, target="value")
            table = data.table
            store.upsert_observations(
                series_id, table["timestamp"].to_numpy(), table["value"].to_numpy()
            )
    return url


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_bundled_config_builds_a_valid_model_config(path: Path, seeded_store: str) -> None:
    spec = TrainSpec.from_toml(path)
    assert path.stem.startswith(spec.model_name)
    assert path.stem.endswith(spec.family)
    assert set(spec.series) <= set(SEEDS), "seed the config's series in SEEDS"
    frame = load_frame(spec, seeded_store if spec.source == "store" else None)
    if spec.family == "auto":  # each candidate family builds its own config (test_auto.py)
        assert frame.rows == spec.last_rows
        return
    lookback = spec.lookback or default_lookback(frame, spec)
    config = build_config(spec, frame, lookback)
    expected = (
        ESNConfig
        if spec.family == "esn"
        else BaselineConfig
        if spec.family in BASELINE_FAMILIES
        else RecurrentConfig
    )
    assert isinstance(config, expected)
    assert config.max_horizon == spec.horizon
    assert config.frequency == frame.frequency
    train, val = fit_series(frame, spec, lookback)
    assert all(len(s.values) > lookback for s in train)
    assert all(len(s.values) >= lookback + spec.horizon for s in val)


def test_bundled_configs_cover_four_datasets_and_four_families() -> None:
    stems = {p.stem for p in EXPERIMENTS}
    for dataset in ("load-etth1", "stock-aapl", "demand-bike-hourly", "demand-sales-weekly"):
        for family in ("lstm", "gru", "rnn", "esn"):
            assert f"{dataset}-{family}" in stems


def test_the_spec_lists_exactly_the_registered_families_and_protocols() -> None:
    """The spec's Literal types exist for pydantic's messages; the registries stay the truth."""
    from models.registry import FAMILIES as REGISTERED
    from training.evaluation.protocols import PROTOCOLS as KNOWN
    from training.jobs import experiment

    assert set(experiment.FAMILIES) == {*REGISTERED, "auto"}
    assert set(experiment.PROTOCOLS) == set(KNOWN)
