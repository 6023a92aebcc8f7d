"""The recurrent family: config rules, cells, heads, IRNN, truncated BPTT, fitting details."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from models import intervals
from models.base import EpochStats, SeriesData
from models.config import RecurrentConfig
from models.errors import ConfigError, ForecastInputError, ModelFileError
from models.recurrent import RecurrentForecaster
from models.scaling import seasonal_scale


def _net(**kw: Any) -> RecurrentForecaster:
    base: dict[str, Any] = {"lookback": 24, "max_horizon": 10, "hidden_size": 8, "device": "cpu"}
    return RecurrentForecaster(RecurrentConfig(**{**base, **kw}))


def test_config_round_trips_through_json() -> None:
    config = RecurrentConfig(family="lstm", covariates=("a", "b"), levels=(50, 90))
    again = RecurrentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hiden_size": 8}, r"unknown config key\(s\) \['hiden_size'\] for RecurrentConfig"),
        ({"lookback": "24"}, r"lookback: expected an integer, got '24'"),
        ({"family": "tcn"}, r"family 'tcn' is not recurrent; use one of"),
        ({"family": "gru", "nonlinearity": "relu"}, r"nonlinearity 'relu' applies only to family"),
        ({"family": "lstm", "irnn_init": True}, r"irnn_init=True applies only to family 'rnn'"),
        (
            {"lookback": 50, "segment_length": 24},
            r"lookback 50 is not a multiple of segment_length 24",
        ),
        ({"decoder": "attention"}, r"decoder 'attention' is not supported"),
        ({"bidirectional": True, "tbptt": 4}, r"tbptt cannot be used with bidirectional=True"),
        ({"dropout": 1.0}, r"dropout 1.0 must be in \[0, 1\)"),
        ({"frequency": "hourly"}, r"frequency 'hourly' is not supported"),
        ({"levels": [80, 100]}, r"levels: 100 is not strictly between 0 and 100"),
        ({"epoch_windows": -5}, r"epoch_windows -5 must be >= 0 \(0 = every window each epoch\)"),
    ],
)
def test_config_refuses_bad_values(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecurrentConfig.from_dict({**RecurrentConfig().to_dict(), **change})


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("decoder", ["direct", "segments", "seq2seq"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_and_head_emits_max_horizon(
    family: str, decoder: str, bidirectional: bool
) -> None:
    net = _net(
        family=family, decoder=decoder, segment_length=4, num_layers=2, bidirectional=bidirectional
    )
    assert isinstance(net.encoder, {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[family])
    out = net(torch.randn(3, 24), None, None)  # [B, L] -> [B, H]
    assert out.shape == (3, 10)  # 10 is not a multiple of the 4-step segments: trimmed


def test_segments_make_the_encoder_short() -> None:
    net = _net(lookback=48, segment_length=12)
    lengths: list[int] = []
    net.encoder.register_forward_hook(lambda _m, args, _o: lengths.append(args[0].shape[1]))
    net(torch.randn(2, 48), None, None)
    assert lengths == [4]  # 48 steps read as 4 recurrent steps


def test_irnn_init_sets_identity_recurrence_and_relu() -> None:
    net = _net(
        family="rnn", nonlinearity="relu", irnn_init=True, segment_length=1, decoder="direct"
    )
    assert net.encoder.nonlinearity == "relu"
    torch.testing.assert_close(net.encoder.weight_hh_l0, torch.eye(8))
    assert float(net.encoder.bias_hh_l0.detach().abs().sum()) == 0.0


def test_tbptt_cuts_gradients_to_early_steps_but_not_values() -> None:
    def run(tbptt: int) -> tuple[Tensor, Tensor]:
        net = _net(segment_length=1, decoder="direct", dropout=0.0, tbptt=tbptt)
        net.train()
        x = torch.randn(2, 24, generator=torch.Generator().manual_seed(0)).requires_grad_()
        out = net(x, None, None)
        out.sum().backward()
        assert x.grad is not None
        return out.detach(), x.grad

    full_out, full_grad = run(0)
    cut_out, cut_grad = run(8)
    torch.testing.assert_close(cut_out, full_out)
    assert float(cut_grad[:, :16].abs().sum()) == 0.0  # before the last 8-step chunk: cut
    assert float(full_grad[:, :16].abs().sum()) > 0.0
    torch.testing.assert_close(cut_grad[:, 16:], full_grad[:, 16:])


def _series(n: int = 200, level: float = 0.0) -> SeriesData:
    t = np.arange(n)
    return SeriesData((level + np.sin(t / 4)).astype(np.float32))


def test_fit_reports_windows_epochs_and_calibrates() -> None:
    net = _net(segment_length=4, epochs=3, patience=5)
    stats: list[EpochStats] = []
    report = net.fit([_series(), _series(150, 50.0)], [_series(80)], callback=stats.append)
    assert report.train_windows == (200 - 34 + 1) + (150 - 34 + 1)
    assert [s.epoch for s in stats] == [1, 2, 3] and report.device == "cpu"
    assert len(net.meta.conformal[80]) == 10 and net.meta.extra["val_windows"] == 80 - 34 + 1
    assert not net.training  # fit leaves the model in eval mode


def test_intervals_scale_with_the_seasonal_change() -> None:
    net = _net(lookback=48, segment_length=8, epochs=1)
    net.fit([_series(300)], [_series(150)])
    assert net.meta.extra["interval_scale"] == "seasonal"
    hist = (np.sin(np.arange(48) / 4) * np.linspace(1, 3, 48)).astype(np.float32)[None, :]
    out = net.predict(hist, 10, levels=(80,))
    half = (out.upper[80] - out.mean)[0]  # [10]
    q = np.asarray(net.meta.conformal[80])
    np.testing.assert_allclose(
        half, q * seasonal_scale(torch.from_numpy(hist), 24).item(), rtol=1e-5
    )
    # quantiles without the scale they were calibrated in are refused, not guessed
    extra = {k: v for k, v in net.meta.extra.items() if k != "interval_scale"}
    net.meta = dataclasses.replace(net.meta, extra=extra)
    with pytest.raises(ModelFileError, match=r"meta.extra has no 'interval_scale'"):
        net.predict(hist, 10, levels=(80,))
    assert net.predict(hist, 10, levels=()).lower == {}


def test_fit_refuses_series_shorter_than_a_window() -> None:
    with pytest.raises(ForecastInputError, match=r"no series has lookback \+ horizon = 34 values"):
        _net().fit([_series(30)], [_series(30)])


def test_predict_without_fit_needs_levels_off() -> None:
    net = _net(segment_length=4)
    with pytest.raises(ForecastInputError, match=r"has no calibrated intervals; fit it first"):
        net.predict(np.zeros((1, 24), np.float32), 5)
    assert net.predict(np.zeros((1, 24), np.float32), 5, levels=()).mean.shape == (1, 5)


def test_different_seeds_give_different_models() -> None:
    a, b = _net(seed=0), _net(seed=1)
    assert not torch.equal(a.encoder.weight_hh_l0, b.encoder.weight_hh_l0)
    assert torch.equal(a.encoder.weight_hh_l0, _net(seed=0).encoder.weight_hh_l0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fits_and_predicts_on_cuda_with_bf16() -> None:
    net = RecurrentForecaster(
        RecurrentConfig(lookback=24, max_horizon=10, hidden_size=8, epochs=2, device="cuda")
    )
    report = net.fit([_series()], [_series(80)])
    assert report.device.startswith("cuda")
    assert np.isfinite(net.predict(np.zeros((2, 24), np.float32), 12).mean).all()


def test_linear_skip_adds_an_nlinear_path() -> None:
    net = _net(segment_length=4, linear_skip=True).eval()
    assert isinstance(net.skip, nn.Linear) and net.skip.weight.shape == (10, 24)
    x = torch.randn(2, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(x, None, None), net._recurrent(x, None, None) + net.skip(x))
    assert _net(segment_length=4).skip is None


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_other_losses_train(loss: str) -> None:
    net = _net(segment_length=4, epochs=1, loss=loss)
    report = net.fit([_series()], [_series(80)])
    assert np.isfinite(report.train_losses).all()


def test_intervals_are_cross_fitted_on_the_two_validation_halves(tmp_path: Path) -> None:
    """Each half of the validation windows is forecast with the weights the other half's early
    stopping kept (saved in the checkpoint), and those residuals are the calibration set."""
    net = _net(segment_length=4, epochs=8, patience=8, lr=0.05)
    t = np.arange(120)
    val = SeriesData((np.sin(t / 4) + 0.3 * np.sin(t / 9) + 0.002 * t**1.5).astype(np.float32))
    net.fit([_series(), _series(150, 5.0)], [val], checkpoint_dir=tmp_path)
    epochs = net.meta.extra["cross_fit_epochs"]
    assert epochs[0] != epochs[1]  # the halves chose different epochs (8 and 7 here)
    windows = net._windows([val], torch.device("cpu"))
    first, second = intervals.cross_fit_halves(windows.counts, torch.device("cpu"))
    assert len(first) == (120 - 34 + 1) // 2 and len(first) + len(second) == len(windows)
    mean = torch.empty(len(windows), 10)
    probe = _net(segment_length=4).eval()
    with torch.inference_mode():
        for own, chooser in ((first, 1), (second, 0)):
            probe.load_state_dict(load_file(str(tmp_path / f"best_half{chooser}.safetensors")))
            mean[own] = probe._forecast(windows.subset(own))
    expected, _ = intervals.calibrate_windows(windows.history, windows.future, mean, "h", (80,))
    for level in (80, 95):
        np.testing.assert_allclose(net.meta.conformal[level], expected[level], rtol=1e-5)
