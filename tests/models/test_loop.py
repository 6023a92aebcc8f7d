"""The shared pieces every family uses: windows, scaling, intervals, roll-forward, train loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from models import intervals
from models.base import EpochStats, SeriesData
from models.errors import ConfigError, ForecastInputError
from models.features import calendar_features
from models.loop import CrossFit, LoopSettings, resolve_device, train_loop
from models.rollout import roll_forward
from models.scaling import denormalise, interval_scale, normalise, seasonal_scale, window_scale
from models.windows import PanelWindows, WindowSet, stack_series_windows

# ---- windows ----------------------------------------------------------------------------------


def _materialised(series: list[SeriesData], lookback: int, horizon: int) -> dict[str, Tensor]:
    """Every window copied out, the way windows were built before they were gathered by index:
    `unfold` over each long-enough series, then one `torch.cat` per input."""
    size = lookback + horizon

    def unfold(a: np.ndarray) -> Tensor:
        t = torch.as_tensor(np.asarray(a, dtype=np.float32))
        t = t[:, None] if t.ndim == 1 else t  # [T, F]
        return t.unfold(0, size, 1).transpose(1, 2)  # [N, L+H, F]

    long = [s for s in series if len(s.values) >= size]
    cal = [calendar_features(np.asarray(s.timestamps), "h") for s in long]
    return {
        "target": torch.cat([unfold(s.values)[..., 0] for s in long]),
        "covariates": torch.cat([unfold(s.covariates)[:, :lookback] for s in long]),
        "calendar": torch.cat([unfold(c) for c in cal]),
        "known": torch.cat([unfold(s.future_covariates) for s in long]),
    }


def _panel(lengths: list[int]) -> list[SeriesData]:
    rng = np.random.default_rng(3)
    start = np.datetime64("2024-01-01T00", "s")
    return [
        SeriesData(
            rng.normal(size=n).astype(np.float32) * 10 + i,
            start + np.arange(n) * np.timedelta64(1, "h"),
            rng.normal(size=(n, 2)).astype(np.float32),
            series_id=f"s{i}",
            future_covariates=rng.normal(size=(n, 3)).astype(np.float32),
        )
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_windows_by_index_equal_the_materialised_windows_bit_for_bit(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA: the same gathers on the device")
    series = _panel([30, 5, 41, 10, 17])  # the 5-step series has no window; 10 has exactly one
    ws = stack_series_windows(
        series, 6, 4, device=device, calendar_freq="h", covariates=2, future_covariates=3
    )
    assert ws.device.type == device
    old = {k: v.to(device) for k, v in _materialised(series, 6, 4).items()}
    assert len(ws) == 21 + 32 + 1 + 8 == old["target"].shape[0]
    every = ws.materialise()
    for name, want in old.items():
        got = getattr(every, name)
        assert got.shape == want.shape and torch.equal(got, want), name
    order = torch.randperm(len(ws), generator=torch.Generator().manual_seed(0))[:13].to(device)
    batch = ws.take(order)
    assert isinstance(batch, WindowSet) and torch.equal(batch.target, old["target"][order])
    assert batch.known is not None and torch.equal(batch.known, old["known"][order])
    assert torch.equal(ws.history, old["target"][:, :6])
    assert torch.equal(ws.future, old["target"][:, 6:])
    # a window never crosses into the next series: the 10-step series' one window is itself
    one = ws.take(torch.tensor([21 + 32], device=device))
    assert torch.equal(one.target[0].cpu(), torch.as_tensor(series[3].values))


def test_windows_by_index_hold_the_series_once_not_every_window() -> None:
    series = _panel([400] * 8)
    ws = stack_series_windows(
        series, 96, 24, device="cpu", calendar_freq=None, covariates=2, future_covariates=3
    )
    assert ws.values.shape == (3200,) and ws.starts.shape == (8 * 281,)
    assert ws.covariates is not None and ws.covariates.shape == (3200, 2)
    held = sum(t.numel() * t.element_size() for t in (ws.values, ws.starts, ws.covariates))
    materialised = 8 * 281 * (120 + 96 * 2) * 4  # target + covariates as [N, L+H] / [N, L, C]
    assert held * 20 < materialised


def test_stack_series_windows_concatenates_all_series_and_skips_short_ones() -> None:
    stamps = np.datetime64("2024-01-01T00", "s") + np.arange(30) * np.timedelta64(1, "h")
    long = SeriesData(np.arange(30, dtype=np.float32), stamps, np.ones((30, 2), np.float32))
    short = SeriesData(np.arange(5, dtype=np.float32), stamps[:5], np.ones((5, 2), np.float32))
    ws = stack_series_windows(
        [long, short, long], 6, 4, device="cpu", calendar_freq="h", covariates=2
    )
    assert len(ws) == 2 * (30 - 10 + 1)
    every = ws.materialise()
    assert (
        every.target.shape == (42, 10)
        and ws.history.shape == (42, 6)
        and ws.future.shape == (42, 4)
    )
    assert every.covariates is not None and every.covariates.shape == (42, 6, 2)
    assert every.calendar is not None and every.calendar.shape == (42, 10, 6)
    torch.testing.assert_close(every.target[21], torch.arange(10, dtype=torch.float32))
    sub = ws.take(torch.tensor([0, 41]))
    assert isinstance(sub, WindowSet) and sub.target.shape == (2, 10)


def test_stack_series_windows_refuses_when_no_series_is_long_enough() -> None:
    with pytest.raises(
        ForecastInputError,
        match=r"no series has lookback \+ horizon = 10 values \(longest has 5\); pass longer",
    ):
        stack_series_windows(
            [SeriesData(np.zeros(5, np.float32))],
            6,
            4,
            device="cpu",
            calendar_freq=None,
            covariates=0,
        )


def test_stack_series_windows_refuses_wrong_covariate_width() -> None:
    s = SeriesData(
        np.zeros(50, np.float32), covariates=np.zeros((50, 1), np.float32), series_id="a"
    )
    with pytest.raises(
        ForecastInputError, match=r"series a: covariates have 1 columns, the model expects 2"
    ):
        stack_series_windows([s], 6, 4, device="cpu", calendar_freq=None, covariates=2)


# ---- scaling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["last", "mean", "revin", "none"])
def test_normalise_is_inverted_by_denormalise(mode: str) -> None:
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(0)) * 5 + 100  # [B, L]
    xn, loc, scale = normalise(x, mode)
    assert loc.shape == scale.shape == (4, 1)
    torch.testing.assert_close(denormalise(xn, loc, scale), x)
    if mode == "last":
        torch.testing.assert_close(xn[:, -1], torch.zeros(4))
    if mode == "revin":
        torch.testing.assert_close(xn.std(dim=1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


def test_normalise_refuses_unknown_mode() -> None:
    with pytest.raises(ConfigError, match=r"norm 'zscore' is not supported; use one of"):
        normalise(torch.zeros(1, 3), "zscore")


def test_window_scale_is_mean_absolute_step() -> None:
    x = torch.tensor([[0.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    scale = window_scale(x)
    assert scale[0, 0].item() == pytest.approx(4 / 3)
    assert 0 < scale[1, 0].item() <= 1e-2  # flat window: small positive floor, never zero


def test_seasonal_scale_is_mean_absolute_seasonal_change() -> None:
    x = torch.tensor([[0.0, 10.0, 1.0, 12.0, 3.0, 11.0]])  # season 2: changes 1, 2, 2, -1
    assert seasonal_scale(x, 2)[0, 0].item() == pytest.approx(6 / 4)
    # No full season in the window: the one-step scale.
    torch.testing.assert_close(seasonal_scale(x, 6), window_scale(x))
    torch.testing.assert_close(interval_scale(x, "seasonal", 2), seasonal_scale(x, 2))
    torch.testing.assert_close(interval_scale(x, "one_step", 2), window_scale(x))
    with pytest.raises(ConfigError, match=r"interval_scale 'std' is not supported"):
        interval_scale(x, "std", 2)


# ---- intervals --------------------------------------------------------------------------------


def test_calibrate_takes_the_finite_sample_corrected_order_statistic() -> None:
    residuals = np.arange(1, 10, dtype=float)[:, None].repeat(2, axis=1)  # [9, 2] = 1..9
    q = intervals.calibrate(residuals, levels=(80,))
    assert q[80] == (8.0, 8.0)  # ceil((9 + 1) * 0.8) = 8th smallest
    assert q[95] == (9.0, 9.0)  # ceil(10 * 0.95) = 10 > n: capped at the largest
    assert set(intervals.STANDARD_LEVELS) <= set(q)


def test_apply_orders_bounds_interpolates_and_widens_past_the_horizon() -> None:
    conformal = {80: (1.0, 2.0), 90: (2.0, 4.0), 95: (3.0, 6.0)}
    mean = np.zeros((2, 4), np.float32)
    scale = np.array([[1.0], [0.5]])
    lower, upper = intervals.apply(mean, scale, conformal, (80, 85, 95))
    np.testing.assert_allclose(upper[80][0, :2], [1.0, 2.0])
    np.testing.assert_allclose(upper[85][1, :2], [0.75, 1.5])  # halfway 80..90, scale 0.5
    np.testing.assert_allclose(upper[95][0, 2:], [6 * np.sqrt(3 / 2), 6 * np.sqrt(4 / 2)])
    assert (lower[95] <= lower[80]).all() and (upper[80] <= upper[95]).all()
    with pytest.raises(ForecastInputError, match=r"levels: 99 is outside the calibrated levels"):
        intervals.apply(mean, scale, conformal, (99,))


@pytest.mark.parametrize("bad", [0, 100, -5, 150])
def test_levels_outside_0_100_are_refused(bad: int) -> None:
    with pytest.raises(ForecastInputError, match=rf"levels: {bad} is not a percentage strictly"):
        intervals.check_levels((80, bad))


# ---- roll-forward -----------------------------------------------------------------------------


def test_roll_forward_feeds_each_block_back_extends_timestamps_and_holds_covariates() -> None:
    seen: list[tuple[int, np.datetime64, list[float]]] = []

    def step(
        history: np.ndarray,
        stamps: np.ndarray | None,
        cov: np.ndarray | None,
        fut: np.ndarray | None = None,
    ) -> np.ndarray:
        assert stamps is not None and cov is not None
        assert cov.shape[1] == history.shape[1] == stamps.shape[1]
        seen.append((history.shape[1], stamps[0, -1], cov[0, -4:, 0].tolist()))
        return history[:, -1:] + np.arange(1, 4)[None, :]  # ramp on from the last value

    start = np.datetime64("2024-01-01T00", "s")
    stamps = (start + np.arange(5) * np.timedelta64(1, "h"))[None, :]
    cov = np.arange(5.0)[None, :, None]  # [1, 5, 1]
    mean, rolled = roll_forward(
        step, np.zeros((1, 5)), 7, 3, timestamps=stamps, covariates=cov, frequency="h"
    )
    assert rolled and mean.tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert [n for n, _, _ in seen] == [5, 8, 11]
    assert seen[-1][1] == start + np.timedelta64(10, "h")
    assert seen[1][2] == [4.0, 4.0, 4.0, 4.0]  # past covariates held at their last row
    _, rolled = roll_forward(
        step, np.zeros((1, 5)), 3, 3, timestamps=stamps, covariates=cov, frequency="h"
    )
    assert not rolled


# ---- training loop ----------------------------------------------------------------------------


class _Linear(nn.Module):
    def __init__(self, lookback: int, horizon: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(lookback, horizon)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.lin(x)
        return out


def _loss(module: nn.Module, batch: WindowSet) -> Tensor:
    return nn.functional.mse_loss(module(batch.history), batch.future)


def _data() -> tuple[PanelWindows, PanelWindows]:
    t = np.arange(300)
    y = (np.sin(t / 5) + 0.1 * np.random.default_rng(0).standard_normal(300)).astype(np.float32)
    train = stack_series_windows(
        [SeriesData(y[:200])], 8, 2, device="cpu", calendar_freq=None, covariates=0
    )
    val = stack_series_windows(
        [SeriesData(y[190:])], 8, 2, device="cpu", calendar_freq=None, covariates=0
    )
    return train, val


def _settings(epochs: int, fingerprint: str = "a") -> LoopSettings:
    return LoopSettings(epochs, 16, 0.05, 0.0, 2, 1.0, seed=1, fingerprint=fingerprint)


def test_train_loop_reports_epochs_and_restores_the_best_weights() -> None:
    train, val = _data()
    module = _Linear(8, 2)
    stats: list[EpochStats] = []
    report = train_loop(module, train, val, _loss, _settings(30), callback=stats.append)
    assert len(stats) == report.epochs == len(report.val_losses)
    assert report.best_epoch == int(np.argmin(report.val_losses)) + 1
    assert report.train_windows == len(train) and report.windows_per_second > 0
    with torch.no_grad():
        restored = float(_loss(module, val))
    assert restored == pytest.approx(min(report.val_losses), rel=1e-5)
    if report.stopped_early:
        assert report.epochs - report.best_epoch == 2


def test_train_loop_resumes_from_its_checkpoint_exactly(tmp_path: Path) -> None:
    train, val = _data()
    straight = train_loop(_Linear(8, 2), train, val, _loss, _settings(4))
    train_loop(_Linear(8, 2), train, val, _loss, _settings(2), checkpoint_dir=tmp_path)
    assert {"best.safetensors", "last.safetensors", "optimizer.safetensors", "progress.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    stats: list[EpochStats] = []
    resumed = train_loop(
        _Linear(8, 2),
        train,
        val,
        _loss,
        _settings(4),
        callback=stats.append,
        checkpoint_dir=tmp_path,
    )
    assert [s.epoch for s in stats] == [3, 4]  # epochs 1-2 came from disk
    assert resumed.train_losses == straight.train_losses
    assert resumed.val_losses == straight.val_losses
    other = train_loop(_Linear(8, 2), train, val, _loss, _settings(1, "b"), checkpoint_dir=tmp_path)
    assert other.epochs == 1  # another config's checkpoint is not reused


def test_a_resumed_run_keeps_each_validation_halfs_best_weights(tmp_path: Path) -> None:
    train, val = _data()
    halves = intervals.cross_fit_halves(val.counts, torch.device("cpu"))

    def run(epochs: int, directory: Path | None) -> CrossFit:
        cross_fit = CrossFit(halves)
        settings = LoopSettings(epochs, 16, 1.0, 0.0, 6, 1.0, seed=1, fingerprint="a")
        train_loop(_Linear(8, 2), train, val, _loss, settings, checkpoint_dir=directory,
                   cross_fit=cross_fit)  # fmt: skip
        return cross_fit

    straight = run(6, None)
    assert straight.best_epoch == [6, 4]  # the later half's best is epoch 4
    run(4, tmp_path)
    resumed = run(6, tmp_path)  # epochs 5-6 only: epoch 4's weights must come from disk
    assert resumed.best_epoch == straight.best_epoch and resumed.best_loss == straight.best_loss
    for mine, theirs in zip(resumed.best_state, straight.best_state, strict=True):
        assert mine is not None and theirs is not None
        for key in theirs:
            torch.testing.assert_close(mine[key], theirs[key])


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match=r"device 'cuda' asked for but CUDA is not available"):
            resolve_device("cuda")


def _lrs(schedule: str, directory: Path) -> tuple[list[float], object]:
    """The learning rate each epoch trained with, read from the checkpoint after each epoch."""
    import json

    seen: list[float] = [0.5]

    def read_rate(stats: EpochStats) -> None:
        progress = json.loads((directory / "progress.json").read_text())
        seen.append(progress["param_groups"][0]["lr"])  # the rate the next epoch uses

    train, val = _data()
    settings = LoopSettings(12, 16, 0.5, 0.0, 12, 1.0, seed=1, schedule=schedule)
    report = train_loop(
        _Linear(8, 2), train, val, _loss, settings, callback=read_rate, checkpoint_dir=directory
    )
    return seen[:-1], report


def test_plateau_schedule_halves_the_rate_after_each_epoch_without_improvement(
    tmp_path: Path,
) -> None:
    lrs, report = _lrs("plateau", tmp_path / "plateau")
    val = report.val_losses  # type: ignore[attr-defined]
    best = [v < min(val[:i], default=float("inf")) for i, v in enumerate(val)]
    for i in range(1, len(lrs)):
        assert lrs[i] == pytest.approx(lrs[i - 1] * (1.0 if best[i - 1] else 0.5))
    assert min(lrs) < 0.5  # the rate did adapt at least once
    constant, _ = _lrs("constant", tmp_path / "constant")
    assert set(constant) == {0.5}


def test_budget_grows_while_the_last_epoch_is_the_best() -> None:
    train, val = _data()
    fixed = train_loop(
        _Linear(8, 2), train, val, _loss, LoopSettings(2, 16, 0.01, 0.0, 3, 1.0, seed=1)
    )
    assert fixed.epochs == 2 and fixed.best_epoch == 2  # still improving at a small rate
    grown = train_loop(
        _Linear(8, 2), train, val, _loss,
        LoopSettings(2, 16, 0.01, 0.0, 3, 1.0, seed=1, max_epochs=7),
    )  # fmt: skip
    assert grown.epochs > 2 and grown.epochs <= 7
    assert grown.val_losses[:2] == fixed.val_losses


def test_time_budget_stops_after_the_epoch_that_spends_it() -> None:
    train, val = _data()
    report = train_loop(
        _Linear(8, 2), train, val, _loss,
        LoopSettings(50, 16, 0.01, 0.0, 50, 1.0, seed=1, time_budget=1e-6),
    )  # fmt: skip
    assert report.epochs == 1


def test_epoch_windows_trains_each_epoch_on_a_fresh_sample() -> None:
    train, val = _data()
    drawn: list[Tensor] = []

    def counting(module: nn.Module, batch: WindowSet) -> Tensor:
        if module.training:
            drawn.append(batch.target)
        return _loss(module, batch)

    settings = LoopSettings(3, 16, 0.01, 0.0, 9, 1.0, seed=1, epoch_windows=40)
    report = train_loop(_Linear(8, 2), train, val, counting, settings)
    assert report.epochs == 3 and report.train_windows == len(train) == 191
    assert sum(len(t) for t in drawn) == 3 * 40  # 40 windows an epoch, not 191
    first, second = torch.cat(drawn[:3]), torch.cat(drawn[3:6])
    assert not torch.equal(first, second)  # another sample each epoch
    again: list[Tensor] = []
    train_loop(
        _Linear(8, 2), train, val, lambda m, b: again.append(b.target) or _loss(m, b), settings
    )
    assert torch.equal(torch.cat(again[:3]), first)  # seeded: the same samples on a rerun


def test_loop_settings_refuse_an_unknown_schedule() -> None:
    with pytest.raises(ConfigError, match=r"lr_schedule 'cosine' is not supported"):
        LoopSettings(2, 16, 0.01, 0.0, 3, 1.0, seed=1, schedule="cosine")


def test_check_roll_caps_rolled_horizons_at_a_multiple_of_max_horizon() -> None:
    from models.rollout import MAX_ROLL, check_roll

    check_roll(MAX_ROLL * 24, 24)
    with pytest.raises(
        ForecastInputError,
        match=r"horizon 97 is beyond what this model forecasts: it emits max_horizon=24 steps "
        r"per pass and rolls forward at most 4 passes \(96 steps\); ask for horizon <= 96",
    ):
        check_roll(97, 24)
    check_roll(97, 24, max_roll=5)


# ---- cross-fitting ----------------------------------------------------------------------------


def test_cross_fit_halves_cut_each_series_windows_in_time_order() -> None:
    first, second = intervals.cross_fit_halves([5, 1, 4], torch.device("cpu"))
    # series 0: windows 0-4 (2 | 3), series 1: window 5 (0 | 1), series 2: windows 6-9 (2 | 2)
    assert first.tolist() == [0, 1, 6, 7]
    assert second.tolist() == [2, 3, 4, 5, 8, 9]


def test_panel_counts_are_the_windows_of_each_series() -> None:
    # L + H = 10: lengths 14, 10, 9 (too short: no windows), 12 -> 5, 1, 0, 3 windows
    panel = stack_series_windows(
        _panel([14, 10, 9, 12]),
        6,
        4,
        device="cpu",
        calendar_freq=None,
        covariates=2,
        future_covariates=3,
    )
    assert panel.counts == (5, 1, 3) and len(panel) == 9
    part = panel.subset(torch.tensor([1, 7]))
    torch.testing.assert_close(part.take(torch.arange(2)).target, panel.take(
        torch.tensor([1, 7])).target)  # fmt: skip
