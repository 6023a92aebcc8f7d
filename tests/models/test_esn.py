"""The echo state network: reservoir, closed-form readout, invariances, config, persistence."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models import intervals, io
from models.base import SeriesData
from models.config import ESNConfig
from models.errors import ConfigError, ForecastInputError
from models.esn import ESNForecaster
from models.reservoir import normal_equations, reservoir_weights, run_reservoir, solve_ridge

TINY = {
    "lookback": 24,
    "max_horizon": 6,
    "reservoir_size": 16,
    "washout": 24,
    "ridge": [0.01],
    "device": "cpu",
}


def _series(n: int = 400, seed: int = 0, level: float = 0.0) -> np.ndarray:
    """A daily cycle plus a slow random walk (so the level drifts) plus noise, float32 [n]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    walk = np.cumsum(rng.normal(0, 0.05, n))
    return (level + np.sin(2 * np.pi * t / 24) + walk + rng.normal(0, 0.1, n)).astype(np.float32)


def _fit(values: np.ndarray | None = None, **overrides: object) -> ESNForecaster:
    values = _series() if values is None else values
    model = ESNForecaster(ESNConfig.from_dict({**TINY, **overrides}))
    model.fit([SeriesData(values[:300])], [SeriesData(values[300 - 24 :])])
    return model


def test_readout_matches_numpy_ridge_on_the_same_states() -> None:
    model = _fit(ridge=[0.05])
    train = [SeriesData(_series()[:300])]
    val = [SeriesData(_series()[300 - 24 :])]
    design, _ = model._designs(train, val)
    z = design.features.numpy()  # [n, F]
    y = design.targets.numpy()  # [n, H]
    mz, my = z.mean(0), y.mean(0)
    sd = np.maximum(np.sqrt(((z - mz) ** 2).mean(0)), 1e-8)
    zs = (z - mz) / sd
    n = len(z)
    v = np.linalg.solve(zs.T @ zs / n + 0.05 * np.eye(z.shape[1]), zs.T @ (y - my) / n)
    weight = v / sd[:, None]
    bias = my - mz @ weight
    np.testing.assert_allclose(model.readout_weight.numpy(), weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.readout_bias.numpy(), bias, rtol=1e-4, atol=1e-5)
    # 24 states washed out, then every origin with a full horizon ahead
    assert z.shape == (300 - 24 - 6 + 1, 16 + 24)


def test_ridge_readout_recovers_a_linear_map_and_its_intercept() -> None:
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.normal(size=(500, 5)) * [1, 10, 0.1, 3, 1] + 7)  # [n, F]
    true_w = torch.from_numpy(rng.normal(size=(5, 2)))
    y = z @ true_w + torch.tensor([1.5, -2.0], dtype=torch.float64)  # [n, 2]
    weight, bias = solve_ridge(*normal_equations(z, y), 1e-10)
    torch.testing.assert_close(weight, true_w, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(z @ weight + bias, y)


def test_reservoir_has_the_configured_spectral_radius_density_and_seed() -> None:
    config = ESNConfig(reservoir_size=60, spectral_radius=0.8, density=0.2, seed=3)
    w_in, w, bias = reservoir_weights(config, 2)
    assert w_in.shape == (60, 2) and w.shape == (60, 60) and bias.shape == (60,)
    radius = torch.linalg.eigvals(w.double()).abs().max().item()
    assert radius == pytest.approx(0.8, rel=1e-5)
    assert 0.1 < (w != 0).float().mean().item() < 0.3
    assert float(w_in.abs().max()) <= config.input_scaling
    same = reservoir_weights(config, 2)
    assert all(torch.equal(a, b) for a, b in zip((w_in, w, bias), same, strict=True))
    # one stream per matrix: a wider input matrix leaves W and b unchanged
    _, w3, bias3 = reservoir_weights(config, 3)
    assert torch.equal(w, w3) and torch.equal(bias, bias3)
    other = reservoir_weights(ESNConfig(reservoir_size=60, seed=4), 2)[1]
    assert not torch.equal(w, other)


def test_run_reservoir_follows_the_leaky_update_equation() -> None:
    config = ESNConfig(reservoir_size=8, seed=0)
    w_in, w, bias = reservoir_weights(config, 1)
    u = torch.randn(2, 5, 1, generator=torch.Generator().manual_seed(0))  # [B, T, D]
    states = run_reservoir(u, w_in, w, bias, 0.3, keep_all=True)  # [B, T, N]
    x = torch.zeros(2, 8)
    for t in range(5):
        x = 0.7 * x + 0.3 * torch.tanh(u[:, t] @ w_in.T + x @ w.T + bias)
        torch.testing.assert_close(states[:, t], x)
    last = run_reservoir(u, w_in, w, bias, 0.3, keep_all=False)
    torch.testing.assert_close(last, states[:, -1])


def test_predict_warmed_over_washout_matches_the_whole_series_states() -> None:
    # the echo-state property predict() relies on: after `washout` steps the zero start is
    # forgotten, so predict's forecasts equal those read from one whole-series run.
    values = _series()
    model = ESNForecaster(ESNConfig.from_dict({**TINY, "lookback": 48, "washout": 48}))
    train, val = [SeriesData(values[:300])], [SeriesData(values)]
    model.fit(train, val)
    _, design = model._designs(train, val)  # val: origins 47 .. 393 of one whole-series run
    whole = (
        design.features.float() @ model.readout_weight + model.readout_bias
    ) * design.scale + design.last  # [n, H]
    windows = np.stack([values[o - 48 : o] for o in range(48, 400 - 6 + 1)])  # [n, L]
    warmed = model.predict(windows, 6, levels=()).mean
    np.testing.assert_allclose(warmed, whole.numpy(), atol=1e-4)


def test_forecasts_move_with_the_level_and_revin_with_the_scale() -> None:
    values = _series()
    history = np.stack([values[-48:], values[-60:-12]])  # [2, 48]
    model = _fit(values)
    base = model.predict(history, 6).mean
    np.testing.assert_allclose(model.predict(history + 50.0, 6).mean, base + 50.0, atol=1e-3)
    revin = _fit(values, norm="revin")
    base = revin.predict(history, 6).mean
    np.testing.assert_allclose(revin.predict(3 * history - 2, 6).mean, 3 * base - 2, atol=1e-3)


def test_revin_validation_scale_reads_the_history_only() -> None:
    # A validation series of exactly one window: its context (first `lookback` values) then
    # targets far more volatile than the context. The fit must score that window as predict()
    # would from the context alone, so the reported val_mse is predict()'s squared error.
    values = _series()
    rng = np.random.default_rng(7)
    context = values[300 - 24 : 300]  # [L]
    targets = values[300:306] + rng.normal(0, 5.0, 6).astype(np.float32)  # [H] volatile
    model = ESNForecaster(ESNConfig.from_dict({**TINY, "norm": "revin"}))
    model.fit([SeriesData(values[:300])], [SeriesData(np.concatenate([context, targets]))])
    mean = model.predict(context[None, :], 6, levels=()).mean[0]  # [H]
    expected = float(np.mean((mean.astype(np.float64) - targets) ** 2))
    assert model.meta.extra["val_mse"] == pytest.approx(expected, rel=1e-4)


def test_concurrent_predictions_leave_the_thread_count_alone() -> None:
    # The service runs predictions in a thread pool; torch's thread count is process-wide,
    # so a model must neither change it nor depend on another call's setting.
    model = _fit()
    values = _series()
    histories = [np.stack([values[i : i + 48], values[i + 5 : i + 53]]) for i in range(0, 96, 4)]
    expected = [model.predict(h, 10).mean for h in histories]
    before = torch.get_num_threads()
    seen: list[int] = []

    def run(h: np.ndarray) -> np.ndarray:
        seen.append(torch.get_num_threads())  # a fresh pool thread reads the process setting
        out = model.predict(h, 10).mean
        seen.append(torch.get_num_threads())
        return out

    torch.set_num_threads(2)
    try:
        for _ in range(3):
            with ThreadPoolExecutor(max_workers=6) as pool:
                got = list(pool.map(run, histories))
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
        fresh: list[int] = []
        thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert set(seen) == {2} and fresh == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fit_beats_repeating_the_last_value_with_ordered_intervals() -> None:
    values = _series(600, seed=2)
    model = ESNForecaster(ESNConfig.from_dict({**TINY, "ridge": [1e-3, 1e-2, 1e-1]}))
    report = model.fit([SeriesData(values[:400])], [SeriesData(values[400 - 24 : 500])])
    assert report.epochs == 1 and report.train_windows == 400 - 24 - 6 + 1
    assert model.meta.extra["ridge"] in (1e-3, 1e-2, 1e-1)
    origins = np.arange(500, 600 - 6 + 1)
    history = np.stack([values[o - 24 : o] for o in origins])  # [n, L]
    actual = np.stack([values[o : o + 6] for o in origins])  # [n, H]
    fc = model.predict(history, 6)
    naive = ((history[:, -1:] - actual) ** 2).mean()
    assert ((fc.mean - actual) ** 2).mean() < 0.5 * naive
    assert np.all(fc.lower[80] <= fc.mean) and np.all(fc.mean <= fc.upper[80])
    assert np.all(fc.lower[95] <= fc.lower[80]) and np.all(fc.upper[80] <= fc.upper[95])
    assert 0.6 < ((actual >= fc.lower[80]) & (actual <= fc.upper[80])).mean() < 0.97


def test_covariates_calendar_many_series_and_roll_forward() -> None:
    stamps = np.arange("2024-01-01T00", 400, dtype="datetime64[h]")
    rng = np.random.default_rng(5)
    train, val = [], []
    for i in range(3):
        values = _series(400, seed=i, level=10.0 * i)
        cov = rng.normal(size=(400, 2)).astype(np.float32)
        train.append(SeriesData(values[:300], stamps[:300], cov[:300], f"s{i}"))
        val.append(SeriesData(values[276:], stamps[276:], cov[276:], f"s{i}"))
    config = ESNConfig.from_dict({**TINY, "covariates": ["a", "b"], "calendar": True})
    model = ESNForecaster(config)
    report = model.fit(train, val)
    assert report.train_windows == 3 * (300 - 24 - 6 + 1)
    history = np.stack([s.values for s in val])[:, -30:]  # [3, 30]
    hstamps = np.stack([s.timestamps for s in val])[:, -30:]
    hcov = np.stack([s.covariates for s in val])[:, -30:]
    fc = model.predict(history, 15, timestamps=hstamps, covariates=hcov)
    assert fc.rolled and fc.mean.shape == (3, 15) and np.isfinite(fc.mean).all()
    assert fc.timestamps is not None and fc.timestamps[0, 0] == stamps[-1] + 1
    short = model.predict(history, 6, timestamps=hstamps, covariates=hcov)
    assert not short.rolled
    np.testing.assert_allclose(fc.mean[:, :6], short.mean)
    with pytest.raises(ForecastInputError, match=r"covariates shape \[3, 30, 1\] does not match"):
        model.predict(history, 6, timestamps=hstamps, covariates=hcov[..., :1])
    with pytest.raises(ForecastInputError, match="timestamps are required"):
        model.predict(history, 6, covariates=hcov)


def test_bad_inputs_are_named() -> None:
    model = _fit()
    with pytest.raises(ForecastInputError, match="history has 10 steps but the model reads"):
        model.predict(np.zeros((1, 10), np.float32), 3)
    bad = np.zeros((2, 30), np.float32)
    bad[1, 4] = np.nan
    with pytest.raises(ForecastInputError, match=r"history holds NaN or inf \(row 1, step 4\)"):
        model.predict(bad, 3)
    with pytest.raises(ForecastInputError, match="horizon 0 must be an integer >= 1"):
        model.predict(np.zeros((1, 30), np.float32), 0)
    fresh = ESNForecaster(ESNConfig.from_dict(TINY))
    with pytest.raises(ForecastInputError, match="no val series has the 30 values one window"):
        fresh.fit([SeriesData(_series()[:300])], [SeriesData(_series()[:20])])
    with pytest.raises(ForecastInputError, match="no calibrated intervals"):
        fresh.predict(np.zeros((1, 30), np.float32), 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"washout": 48}, "washout 48 exceeds lookback 24"),
        ({"norm": "mean"}, "norm 'mean' is not supported"),
        ({"ridge": []}, r"ridge \[\] must hold one or more values > 0"),
        ({"leak_rate": 0.0}, r"leak_rate 0.0 must be in \(0, 1\]"),
        ({"density": 1.5}, r"density 1.5 must be in \(0, 1\]"),
        ({"family": "gru"}, "family 'gru' is not 'esn'"),
        ({"hidden_size": 8}, r"unknown config key\(s\) \['hidden_size'\] for ESNConfig"),
        ({"reservoir_size": "big"}, "reservoir_size: expected an integer, got 'big'"),
    ],
)
def test_config_errors_name_the_field_and_value(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ESNConfig.from_dict({**TINY, **change})


def test_config_round_trips_through_json_and_io_dispatch() -> None:
    config = ESNConfig.from_dict({**TINY, "covariates": ["x"]})
    again = io.config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(io.create(again), ESNForecaster)


def test_save_load_gives_identical_predictions(tmp_path: Path) -> None:
    model = _fit()
    history = _series()[None, -40:]
    io.save(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "meta.json",
        "weights.safetensors",
    ]
    tensors = load_file(str(tmp_path / "m" / "weights.safetensors"))
    assert {"w_in", "w", "bias", "readout_weight", "readout_bias"} <= set(tensors)
    loaded = io.load(tmp_path / "m")
    assert loaded.meta == model.meta
    a, b = model.predict(history, 9), loaded.predict(history, 9)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.upper[95], b.upper[95])


def test_same_seed_same_forecast() -> None:
    history = _series()[None, -40:]
    a = _fit(seed=7).predict(history, 6).mean
    np.testing.assert_array_equal(a, _fit(seed=7).predict(history, 6).mean)
    assert not np.array_equal(a, _fit(seed=8).predict(history, 6).mean)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    history = _series()[None, -40:]
    cpu = _fit().predict(history, 6).mean
    gpu = _fit(device="cuda")
    assert gpu.w.is_cuda
    np.testing.assert_allclose(gpu.predict(history, 6).mean, cpu, atol=1e-3)


def test_intervals_are_cross_fitted_on_the_two_validation_halves() -> None:
    """Each half of the validation windows is forecast with the ridge the other half chose, and
    those residuals are the calibration set (models.intervals: cross-fitting)."""
    values = _series(seed=4)
    model = _fit(values, ridge=[1e-4, 1.0, 100.0])
    picks = model.meta.extra["cross_fit_ridges"]
    assert picks == [1.0, 1e-4] and model.meta.extra["ridge"] == 1e-4  # the halves disagree
    train, val = [SeriesData(values[:300])], [SeriesData(values[300 - 24 :])]
    forecasts = {}
    for ridge in set(picks):  # the same reservoir (seed), one ridge each: that ridge's readout
        single = _fit(values, ridge=[ridge])
        _, design = single._designs(train, val)
        out = design.features.float() @ single.readout_weight + single.readout_bias
        forecasts[ridge] = single._denormalise(design, out)  # [n, H]
    first, second = intervals.cross_fit_halves(design.counts, torch.device("cpu"))
    mean = torch.empty_like(forecasts[picks[0]])
    mean[first], mean[second] = forecasts[picks[1]][first], forecasts[picks[0]][second]
    actual = single._denormalise(design, design.targets.float())
    expected, _ = intervals.calibrate_windows(design.history, actual, mean, "h", (80,))
    for level in (80, 95):
        np.testing.assert_allclose(model.meta.conformal[level], expected[level], rtol=1e-4)
    plain, _ = intervals.calibrate_windows(design.history, actual, forecasts[1e-4], "h", (80,))
    assert not np.allclose(plain[80], expected[80], rtol=1e-4)  # the check can tell them apart
