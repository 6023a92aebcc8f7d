"""tracking.py and settings.py against a real MLflow SQLite store in a temporary folder."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models import io as models_io
from models.base import Forecaster, SeriesData
from models.config import RecurrentConfig
from training.errors import TrackingError
from training.registry.pyfunc_model import forecast_frame
from training.registry.tracking import Tracker, check_reachable, model_signature
from training.settings import TrainSettings, local_artifact_root, resolve_tracking_uri

LOOKBACK, HORIZON = 24, 6


def fresh_store(factory: pytest.TempPathFactory, label: str) -> str:
    """A new, empty MLflow SQLite store in its own temporary folder; returns its URI.

    Creating MLflow's schema costs seconds of CPU, so it is built once per test session and
    the database file is copied for every store.
    """
    template = factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        mlflow.MlflowClient(f"sqlite:///{template}").search_experiments()
    root = factory.mktemp(label)
    shutil.copy(template, root / "mlflow.db")
    return f"sqlite:///{root}/mlflow.db"


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    return Tracker(fresh_store(tmp_path_factory, "mlflow"), TrainSettings())


def _series(n: int = 200, seed: int = 0) -> SeriesData:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = (10 + np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    stamps = np.datetime64("2024-01-01T00:00", "ns") + t * np.timedelta64(1, "h")
    return SeriesData(values=values, timestamps=stamps, series_id="s1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Forecaster, Path]:
    config = RecurrentConfig(
        family="gru",
        lookback=LOOKBACK,
        max_horizon=HORIZON,
        hidden_size=8,
        segment_length=12,
        epochs=1,
        device="cpu",
    )
    model = models_io.create(config)
    s = _series()
    val = SeriesData(s.values[140:], s.timestamps[140:], None, "s1")  # type: ignore[index]
    model.fit([SeriesData(s.values[:160], s.timestamps[:160], None, "s1")], [val])  # type: ignore[index]
    directory = tmp_path_factory.mktemp("model") / "forecaster"
    models_io.save(model, directory)
    return model, directory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_default_uri_is_absolute_sqlite_under_mlruns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FORECAST_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = resolve_tracking_uri(None, TrainSettings())
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert local_artifact_root(uri, TrainSettings()) == (tmp_path / "mlruns/artifacts").as_uri()


def test_mlflow_tracking_uri_env_wins_and_flag_wins_over_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve_tracking_uri(None, TrainSettings()) == "http://mlflow.example:5000"
    assert resolve_tracking_uri("sqlite:////x/y.db", TrainSettings()) == "sqlite:////x/y.db"
    assert local_artifact_root("http://mlflow.example:5000", TrainSettings()) is None


def test_unreachable_server_fails_fast_with_the_fix() -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TrackingError) as info:
        check_reachable(uri, timeout=2.0)
    message = str(info.value)
    assert message.startswith(f"tracking server {uri} is unreachable (")
    assert "Fix: start it (mlflow server" in message
    with pytest.raises(TrackingError, match="is unreachable"):
        Tracker(uri, TrainSettings())


def test_experiment_gets_the_local_artifact_root(tracker: Tracker) -> None:
    experiment_id = tracker.experiment_id("exp-a")
    assert tracker.experiment_id("exp-a") == experiment_id
    location = tracker.client.get_experiment(experiment_id).artifact_location
    db_dir = Path(tracker.uri[len("sqlite:///") :]).parent
    assert location == f"{(db_dir / 'artifacts').as_uri()}/exp-a"


def test_metrics_params_history_and_failed_status(tracker: Tracker) -> None:
    with tracker.run("exp-b", "r1") as run:
        run.params({"lookback": 24, "levels": [80, 95]})
        run.metrics({"test_mae": 1.5, "bad": float("nan")})
        run.metric_rows([("test_mae_by_step", float(h), h) for h in range(1, 4)])
        run_id = run.run_id
    data = tracker.run_data(run_id)
    assert data.status == "FINISHED"
    assert data.params == {"lookback": "24", "levels": "[80, 95]"}
    assert data.metrics == {"test_mae": 1.5, "test_mae_by_step": 3.0}
    assert tracker.metric_history(run_id, "test_mae_by_step") == [(1, 1.0), (2, 2.0), (3, 3.0)]
    with pytest.raises(RuntimeError), tracker.run("exp-b", "r2") as run:
        failed = run.run_id
        raise RuntimeError("boom")
    assert tracker.run_data(failed).status == "FAILED"


def _input(n: int = 40) -> pd.DataFrame:
    s = _series()
    return pd.DataFrame({"timestamp": s.timestamps[-n:], "value": s.values[-n:].astype(float)})  # type: ignore[index]


def test_logged_pyfunc_matches_our_loader_without_pickle(
    tracker: Tracker,
    trained: tuple[Forecaster, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, directory = trained
    with tracker.run("exp-c", "model") as run:
        version = run.log_model(
            directory,
            registered_name="unit-model",
            signature=model_signature(HORIZON, (80, 95)),
            input_example=_input(LOOKBACK),
            horizon=HORIZON,
        )
    assert version == 1
    local = tracker.download_forecaster("unit-model", 1, tmp_path)
    assert sorted(p.name for p in local.iterdir()) == [
        "config.json",
        "meta.json",
        "weights.safetensors",
    ]
    root = local.parent.parent
    assert not list(root.rglob("*.pkl"))
    assert (root / "code" / "models" / "io.py").is_file()
    assert (root / "pyfunc_model.py").is_file()

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with tracker.active():
        loaded = mlflow.pyfunc.load_model("models:/unit-model/1")
    got = loaded.predict(_input(), params={"horizon": 9, "levels": [80]})
    ours = models_io.load(local)
    history = _input()["value"].to_numpy(dtype=np.float32)[-LOOKBACK:][None, :]  # [1, L]
    expected = ours.predict(history, 9, (80,))
    assert list(got.columns) == ["series_id", "timestamp", "step", "mean", "lower_80", "upper_80"]
    np.testing.assert_allclose(got["mean"].to_numpy(), expected.mean[0], rtol=1e-6)
    np.testing.assert_allclose(got["upper_80"].to_numpy(), expected.upper[80][0], rtol=1e-6)
    assert got["step"].tolist() == list(range(1, 10))
    last = _input()["timestamp"].iloc[-1]
    assert got["timestamp"].iloc[0] == last + pd.Timedelta(hours=1)
    same = forecast_frame(model, _input(), {"horizon": 9, "levels": [80]})
    np.testing.assert_allclose(same["mean"].to_numpy(), expected.mean[0], rtol=1e-5)


def test_pyfunc_input_errors_name_the_fix(trained: tuple[Forecaster, Path]) -> None:
    model, _ = trained
    from models.errors import ForecastInputError

    with pytest.raises(ForecastInputError, match=r"lack \['value'\]. Fix: send columns"):
        forecast_frame(model, _input().drop(columns="value"), {})
    with pytest.raises(
        ForecastInputError, match="series '0' has 10 rows; the model reads the last"
    ):
        forecast_frame(model, _input(10), {})


def test_pyfunc_forecasts_many_series_from_shuffled_rows(
    trained: tuple[Forecaster, Path],
) -> None:
    """The newest look-back of each series is gathered by index: whatever the row order and
    the series' lengths, each series gets the forecast of its own last `lookback` values."""
    model, _ = trained
    parts = []
    for i, n in enumerate((30, 24, 61)):
        s = _series(n, seed=i)
        parts.append(
            pd.DataFrame({"series_id": f"s{2 - i}", "timestamp": s.timestamps, "value": s.values})
        )
    frame = pd.concat(parts).sample(frac=1.0, random_state=0)  # rows in any order
    got = forecast_frame(model, frame, {"horizon": HORIZON, "levels": [80]})
    assert got["series_id"].tolist() == [f"s{k}" for k in (0, 1, 2) for _ in range(HORIZON)]
    for sid, part in zip(("s2", "s1", "s0"), parts, strict=True):
        tail = part["value"].to_numpy(dtype=np.float32)[-LOOKBACK:][None, :]  # [1, L]
        want = model.predict(tail, HORIZON, (80,))
        rows = got[got["series_id"] == sid]
        np.testing.assert_allclose(rows["mean"].to_numpy(), want.mean[0], rtol=1e-5)
        assert rows["timestamp"].iloc[0] == part["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
    with pytest.raises(Exception, match="series 's9' has 5 rows; the model reads the last 24"):
        short = pd.DataFrame(
            {"series_id": "s9", "timestamp": parts[0]["timestamp"][:5], "value": 1.0}
        )
        forecast_frame(model, pd.concat([frame, short]), {})


def test_unknown_version_is_a_user_error(tracker: Tracker) -> None:
    with pytest.raises(TrackingError, match="registered model 'nobody' has no version 3"):
        tracker.version("nobody", 3)
    assert tracker.versions("nobody") == []
    assert tracker.aliases("nobody") == {}
