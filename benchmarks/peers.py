"""Peer benchmark: NeuralForecast's LSTM on our ETTh1 protocol, one JSON line per horizon.

    PYTHONPATH=. /tmp/peers-venv/bin/python -m benchmarks.peers --horizon 24,96
        [--max-epochs 10] [--scaler robust|standard|...] [--loss mse|mae] [--seed 1] [--json]

The peer library lives in its own virtualenv, never the project's (its pins would fight ours):

    python3.11 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install torch==2.13.0          # first and alone: the CPU wheel
    echo "torch==2.13.0" > /tmp/peers-constraints.txt
    /tmp/peers-venv/bin/pip install -c /tmp/peers-constraints.txt neuralforecast

(Set up with neuralforecast 3.3.0, pytorch-lightning 2.6.6, torch 2.13.0+cpu, pandas 3.1.1.)
From that venv, run from the repository root with PYTHONPATH=.,
`training.evaluation.protocols` imports
(it needs only numpy/pandas), so the data, z-scoring and test windows are ours.

Protocol (training/evaluation/protocols.py, as benchmarks/ett.py --mode S): ETTh1 OT, rows [0, 8640)
train, [8640, 11520) validation, a forecast from every test row 11520 .. 14400 - H
(2880 - H + 1 windows), z-scored with the training rows' mean and population std; MSE/MAE on
that scale over every test window, and the naive (repeat the last value) MSE on the same ones.

Mapping of NeuralForecast's settings to ours (`benchmarks.ett --family lstm --arch peer`):
- architecture: LSTM(input_size=96, h=H, encoder_hidden_size=64, encoder_n_layers=2), the
  library's direct (recurrent=False) decoder: an MLP (decoder_hidden_size 128, 2 layers) on
  each of the last H encoder outputs (for H > 96 a Linear upsamples the 96 outputs to H).
- batch: batch_size=1 series (there is one), windows_batch_size=32: every training step
  samples 32 distinct windows (torch.randperm) of the 8640 - 96 - H + 1 training windows,
  drawn afresh each step (no epoch-wise permutation, unlike our loop).
- budget: an "epoch" is ceil(n_train / 32) steps; max_steps = max_epochs x that, and
  val_check_steps = one epoch, so validation runs after every epoch, as ours does.
- early stopping: early_stop_patience_steps=3 (validation checks, i.e. epochs), on the
  validation loss over every validation window (fit(val_size=2880): its windows forecast
  rows 8640 .. 11519, look-back reaching into the training rows, as ours).
- scaler: scaler_type per window (`--scaler`, default "robust", NeuralForecast's default:
  median/MAD of each window's look-back; "standard" is the per-window mean/std). Ours
  ("norm": "last") subtracts each window's last value.
- loss: MSE for training and validation (`--loss`, default "mse", as ours; NeuralForecast's
  default is MAE).
- Lightning's sanity-check validation pass before training is turned off
  (num_sanity_val_steps=0): ours has none, and it is a debugging aid, not training.
- optimizer: the library's Adam, lr 1e-3, no decay (num_lr_decays=-1), no gradient clipping.
- forecasts: after the timed fit, cross_validation(use_fitted=True, test_size=2880,
  step_size=1) predicts every test origin in one call without retraining.

Not like-for-like: ours uses AdamW (weight decay 1e-4), gradient-norm clipping 1.0, a
Linear head on the last hidden state, epoch-wise shuffling, and restores the best epoch's
weights after early stopping; NeuralForecast keeps the weights of the last step (3 checks
past the best). Its "epoch" holds ceil(n/32) x 32 windows, slightly more than our n.

Timing: `train_seconds` is the wall time of NeuralForecast.fit() alone (dataset building,
Lightning trainer, training steps and every validation pass; not imports, not prediction),
`train_cpu_seconds` this process's CPU time (time.process_time) over the same call.
`train_windows` = steps x 32 (windows the optimizer saw). As in ours, `train_windows_per_second`
counts the training passes alone: train_windows / `pass_seconds`, the Lightning training loop's
wall time (on_train_start .. on_train_end) less its validation passes (`validation_seconds`);
`fit_windows_per_second` = train_windows / train_seconds, everything included.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Column, add_data_arguments, check_data_arguments, report
from training.evaluation.protocols import EttProblem, ett_problem

LOOKBACK = 96
COLUMNS: list[Column] = [
    ("horizon", "H", ">4"), ("mse", "mse", ">7.4f"), ("mae", "mae", ">7.4f"),
    ("naive_mse", "naive", ">7.4f"), ("steps", "steps", ">6"), ("train_seconds", "fit s", ">7.2f"),
    ("train_windows_per_second", "win/s", ">8.1f"),
]  # fmt: skip
HIDDEN = 64
LAYERS = 2
BATCH = 32  # windows per optimizer step
PATIENCE = 3  # validation checks (one per epoch)
SCALERS = ("robust", "standard", "revin", "minmax", "minmax1", "invariant", "identity")


def series_frame(problem: EttProblem) -> pd.DataFrame:
    """The z-scored target as a NeuralForecast long frame: unique_id, ds (row number), y."""
    y = problem.values[:, problem.target_index]  # [14400]
    return pd.DataFrame({"unique_id": "OT", "ds": np.arange(len(y)), "y": y})


def train_windows_per_epoch(problem: EttProblem) -> int:
    """Training windows of length L + H inside rows [0, 8640): 8640 - L - H + 1."""
    return problem.split.train_end - LOOKBACK - problem.horizon + 1


class PassTimer:
    """Wall seconds of the training loop and of its validation passes (a Lightning callback)."""

    def __init__(self) -> None:
        self.loop_seconds = 0.0
        self.validation_seconds = 0.0
        self._loop0 = self._val0 = 0.0

    def as_callback(self) -> Any:
        """A pytorch_lightning Callback that feeds this timer."""
        from pytorch_lightning import Callback

        timer = self

        class _Timer(Callback):  # type: ignore[misc]
            def on_train_start(self, trainer: Any, module: Any) -> None:
                timer._loop0 = time.perf_counter()

            def on_train_end(self, trainer: Any, module: Any) -> None:
                timer.loop_seconds += time.perf_counter() - timer._loop0

            def on_validation_start(self, trainer: Any, module: Any) -> None:
                timer._val0 = time.perf_counter()

            def on_validation_end(self, trainer: Any, module: Any) -> None:
                timer.validation_seconds += time.perf_counter() - timer._val0

        return _Timer()


def build_model(horizon: int, n_train: int, args: argparse.Namespace, timer: PassTimer) -> Any:
    """NeuralForecast's LSTM with the peer architecture and our epoch budget in steps."""
    from neuralforecast.losses.pytorch import MAE, MSE
    from neuralforecast.models import LSTM

    steps_per_epoch = math.ceil(n_train / BATCH)
    loss = MSE() if args.loss == "mse" else MAE()
    return LSTM(
        h=horizon,
        input_size=LOOKBACK,
        encoder_hidden_size=HIDDEN,
        encoder_n_layers=LAYERS,
        loss=loss,
        valid_loss=loss,
        batch_size=1,  # series per batch: the one target series
        windows_batch_size=BATCH,
        max_steps=args.max_epochs * steps_per_epoch,
        val_check_steps=steps_per_epoch,
        early_stop_patience_steps=PATIENCE,
        scaler_type=args.scaler,
        learning_rate=1e-3,
        random_seed=args.seed,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,  # no pre-training validation pass (ours has none)
        callbacks=[timer.as_callback()],
    )


def quiet() -> None:
    """Silence Lightning's banners and the libraries' warnings (JSON lines stay clean)."""
    import neuralforecast  # noqa: F401  (Lightning sets its loggers' levels on import)

    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def forecasts(nf: Any, frame: pd.DataFrame, problem: EttProblem, actual: np.ndarray) -> np.ndarray:
    """[W, H] forecasts from every test origin 11520 .. 14400 - H, with the fitted weights.

    Checks that NeuralForecast's windows are the protocol's: same origins, and its targets
    equal `actual` [W, H].
    """
    n_test = problem.split.n_test
    cv = nf.cross_validation(
        df=frame, n_windows=None, test_size=n_test, step_size=1, use_fitted=True
    )  # rows sorted by (unique_id, cutoff, ds): W cutoffs x H steps
    w, h = len(problem.origins), problem.horizon
    first = cv["cutoff"].to_numpy().reshape(w, h)[:, 0] + 1  # [W] first forecast rows
    if not np.array_equal(first, problem.origins):
        raise RuntimeError("NeuralForecast's test origins differ from the protocol's")
    if not np.allclose(cv["y"].to_numpy(dtype=np.float64).reshape(w, h), actual):
        raise RuntimeError("NeuralForecast's test targets differ from the protocol's")
    pred: np.ndarray = cv["LSTM"].to_numpy(dtype=np.float64).reshape(w, h)  # [W, H]
    return pred


def run_one(horizon: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fit NeuralForecast's LSTM at one horizon and score it on every test window."""
    from neuralforecast import NeuralForecast

    problem = ett_problem(args.data, horizon, mode="S")
    hist, actual = problem.windows(LOOKBACK)  # [W, L], [W, H] on the z-scored scale
    frame = series_frame(problem)  # [14400, 3]
    n_train = train_windows_per_epoch(problem)
    timer = PassTimer()
    nf = NeuralForecast(models=[build_model(horizon, n_train, args, timer)], freq=1)
    fit_frame = frame.iloc[: problem.split.val_end]  # rows [0, 11520): train + validation

    cpu0, t0 = time.process_time(), time.perf_counter()
    nf.fit(df=fit_frame, val_size=problem.split.n_val)
    train_seconds, train_cpu = time.perf_counter() - t0, time.process_time() - cpu0

    pred = forecasts(nf, frame, problem, actual)  # [W, H]
    naive = np.repeat(hist[:, -1:], horizon, axis=1)  # [W, H]
    steps = len(nf.models[0].train_trajectories)
    pass_seconds = timer.loop_seconds - timer.validation_seconds
    return {
        "peer": "neuralforecast.LSTM",
        "horizon": horizon,
        "lookback": LOOKBACK,
        "mse": round(float(np.mean((pred - actual) ** 2)), 5),
        "mae": round(float(np.mean(np.abs(pred - actual))), 5),
        "naive_mse": round(float(np.mean((naive - actual) ** 2)), 5),
        "windows": len(actual),
        "train_seconds": round(train_seconds, 3),
        "train_cpu_seconds": round(train_cpu, 3),
        "train_windows": steps * BATCH,
        "train_windows_per_second": round(steps * BATCH / pass_seconds, 1),
        "fit_windows_per_second": round(steps * BATCH / train_seconds, 1),
        "pass_seconds": round(pass_seconds, 3),
        "validation_seconds": round(timer.validation_seconds, 3),
        "steps": steps,
        "validation_checks": len(nf.models[0].valid_trajectories),
        "max_steps": nf.models[0].max_steps,
        "scaler": args.scaler,
        "loss": args.loss,
        "version": metadata.version("neuralforecast"),
        "torch": metadata.version("torch"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=__doc__.split("\n")[0]
    )
    add_data_arguments(parser)
    parser.add_argument("--max-epochs", type=int, default=10, help="budget in epochs of windows")
    parser.add_argument("--scaler", default="robust", choices=SCALERS, help="per-window scaler")
    parser.add_argument("--loss", default="mse", choices=("mse", "mae"))
    parser.add_argument("--seed", type=int, default=1, help="NeuralForecast's random_seed")
    parser.add_argument("--json", action="store_true", help="JSON lines only (no table)")
    args = parser.parse_args(argv)
    check_data_arguments(parser, args)
    if args.max_epochs < 1:
        parser.error(f"--max-epochs {args.max_epochs}: must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the peer benchmark; print one JSON line per horizon."""
    args = parse_args(argv)
    quiet()
    report((run_one(horizon, args) for horizon in args.horizons), COLUMNS, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
