"""The training loop every gradient-trained family shares: plain PyTorch, readable in one screen.

Windows are start rows into the series on the device (models.windows); an epoch is a seeded
permutation of window indices cut into batches, each gathered when it is trained on. AdamW,
gradient-norm clipping, bf16 autocast on CUDA only, early stopping on validation loss that
restores the best weights. With a `checkpoint_dir`, the best weights, the last weights and the
optimizer state are written after every epoch (safetensors + JSON), and a later call with the
same config fingerprint resumes where it stopped.

Convergence. A fixed learning rate and a fixed epoch count either stop a run that is still
improving or waste epochs at a step size too large to settle, so `schedule="plateau"` halves
the rate after every epoch without validation improvement (smaller steps before early stopping
gives up), and `max_epochs > epochs` extends the budget by half of `epochs` whenever its last
epoch was the best, up to `max_epochs`. `time_budget` and `epoch_windows` are described in
`RecurrentConfig`. The defaults are the plain loop the tuned benchmark configs were measured with.

Cross-fitting (models.intervals). Given a `CrossFit`, the validation loss is also taken on each
half of the validation windows, and the best weights of each half are kept besides the overall
best, so the family can forecast each half with the weights the other half chose.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models import checkpoint
from models.base import EpochCallback, EpochStats, FitReport
from models.config import LR_SCHEDULES
from models.errors import ConfigError
from models.windows import Windows, WindowSet

log = logging.getLogger(__name__)

# loss_fn(module, batch) -> scalar loss; the family's forward pass + its loss.
LossFn = Callable[[nn.Module, WindowSet], Tensor]


@dataclass(frozen=True)
class LoopSettings:
    """Optimisation settings; `fingerprint` identifies the run for checkpoint resume."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    grad_clip: float
    seed: int
    fingerprint: str = ""
    schedule: str = "constant"
    max_epochs: int = 0
    time_budget: float = 0.0
    epoch_windows: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule {self.schedule!r} is not supported; use one of {LR_SCHEDULES}"
            )


@dataclass
class CrossFit:
    """Early stopping chosen once on each half of the validation windows.

    Attributes:
        halves: ([n1], [n2]) indices into the validation windows (models.intervals).
        best_loss: each half's best validation loss so far.
        best_state: each half's weights at that epoch (None before the first epoch).
        best_epoch: that epoch, per half (0 before the first).
    """

    halves: tuple[Tensor, Tensor]
    best_loss: list[float] = field(default_factory=lambda: [math.inf, math.inf])
    best_state: list[dict[str, Tensor] | None] = field(default_factory=lambda: [None, None])
    best_epoch: list[int] = field(default_factory=lambda: [0, 0])

    def update(self, module: nn.Module, losses: tuple[float, float], epoch: int) -> None:
        """Keep the weights of each half whose loss improved at `epoch`."""
        for i in (0, 1):
            if losses[i] < self.best_loss[i]:
                self.best_loss[i], self.best_epoch[i] = losses[i], epoch
                self.best_state[i] = checkpoint.state_copy(module)


PLATEAU_FACTOR = 0.5  # learning-rate multiplier after an epoch without improvement


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without CUDA fails with the fix."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use 'auto'")
    return torch.device(name)


def _mean_loss(
    module: nn.Module, data: Windows, loss_fn: LossFn, batch: int, index: Tensor | None = None
) -> float:
    """Window-weighted mean loss over `data` (the windows at `index`, else all), no gradients."""
    module.eval()
    if index is None:
        index = torch.arange(len(data), device=data.device)
    total, count = 0.0, 0
    with torch.no_grad(), _autocast(data.device):
        for start in range(0, len(index), batch):
            idx = index[start : start + batch]
            total += float(loss_fn(module, data.take(idx))) * len(idx)
            count += len(idx)
    return total / max(count, 1)


def _val_loss(
    module: nn.Module,
    val: Windows,
    loss_fn: LossFn,
    batch: int,
    cross_fit: CrossFit | None,
    epoch: int,
) -> float:
    """The validation loss; with `cross_fit`, taken per half and each half's best kept."""
    if cross_fit is None:
        return _mean_loss(module, val, loss_fn, batch)
    first, second = (
        (_mean_loss(module, val, loss_fn, batch, half), len(half)) if len(half) else (math.inf, 0)
        for half in cross_fit.halves
    )  # an empty half never improves, so never chooses
    cross_fit.update(module, (first[0], second[0]), epoch)
    weighted = sum(loss * n for loss, n in (first, second) if n)
    return weighted / max(first[1] + second[1], 1)


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _save_halves(directory: Path, progress: dict[str, Any], cross_fit: CrossFit) -> None:
    """Each validation half's best weights, and their losses in the progress record."""
    progress["cross_fit_loss"] = list(cross_fit.best_loss)
    progress["cross_fit_epoch"] = list(cross_fit.best_epoch)
    for i, state in enumerate(cross_fit.best_state):
        if state is not None:
            save_file(state, str(directory / f"best_half{i}.safetensors"))


def _restore_halves(
    directory: Path, progress: dict[str, Any], cross_fit: CrossFit, device: torch.device
) -> None:
    """What `_save_halves` wrote, when the resumed run kept it."""
    losses, epochs = progress.get("cross_fit_loss", ()), progress.get("cross_fit_epoch", ())
    for i, (loss, epoch) in enumerate(zip(losses, epochs, strict=False)):
        path = directory / f"best_half{i}.safetensors"
        if path.exists():
            cross_fit.best_loss[i], cross_fit.best_epoch[i] = float(loss), int(epoch)
            cross_fit.best_state[i] = load_file(str(path), device=str(device))


def _train_epoch(
    module: nn.Module,
    windows: Windows,
    order: Tensor,
    loss_fn: LossFn,
    opt: torch.optim.Optimizer,
    settings: LoopSettings,
) -> float:
    """One pass over the windows at `order` ([M] indices, in that order); the mean train loss."""
    module.train()
    device = windows.device
    total = torch.zeros((), device=device)  # summed on device: no sync per batch
    for i in range(0, len(order), settings.batch_size):
        idx = order[i : i + settings.batch_size]  # [B]
        with _autocast(device):
            loss = loss_fn(module, windows.take(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), settings.grad_clip)
        opt.step()
        total += loss.detach().float() * len(idx)
    return float(total) / len(order)


def _extend_budget(progress: dict[str, Any], settings: LoopSettings) -> None:
    """Raise the epoch budget by half of `epochs` when its last epoch was the best one."""
    epoch, budget = progress["epoch"], progress["budget"]
    if epoch < budget or progress["best_epoch"] != epoch or budget >= settings.max_epochs:
        return
    progress["budget"] = min(settings.max_epochs, budget + max(1, settings.epochs // 2))
    log.info(
        "epoch %d of %d was the best so far: budget raised to %d", epoch, budget,
        progress["budget"],
    )  # fmt: skip


def train_loop(
    module: nn.Module,
    windows: Windows,
    val: Windows,
    loss_fn: LossFn,
    settings: LoopSettings,
    *,
    callback: EpochCallback | None = None,
    checkpoint_dir: Path | None = None,
    cross_fit: CrossFit | None = None,
) -> FitReport:
    """Train `module` (already on the windows' device) on `windows`, early-stop on `val`, and
    leave the best weights loaded.

    `callback` gets EpochStats after every epoch; `checkpoint_dir` holds best/last weights and
    optimizer state during training; `cross_fit`, when given, is filled with each validation
    half's best weights (a resumed run restores them). The FitReport's per-epoch losses
    include the epochs before a resume.
    """
    device = windows.device
    opt = torch.optim.AdamW(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    progress: dict[str, Any] = {
        "fingerprint": settings.fingerprint,
        "epoch": 0,
        "best_epoch": 0,
        "best_val": float("inf"),
        "train": [],
        "val": [],
        "done": False,
        "budget": settings.epochs,
    }
    best = checkpoint.state_copy(module)
    if checkpoint_dir is not None:
        resumed = checkpoint.load(checkpoint_dir, module, opt, settings.fingerprint)
        if resumed is not None:
            progress = resumed
            best_path = checkpoint_dir / "best.safetensors"
            if best_path.exists():
                best = load_file(str(best_path), device=str(device))
            if cross_fit is not None:
                _restore_halves(checkpoint_dir, progress, cross_fit, device)
    seconds, seen, pass_seconds = 0.0, 0, 0.0
    # a resumed run keeps a budget it had already raised, and takes a larger `epochs` asked now
    progress["budget"] = max(int(progress.get("budget", 0)), settings.epochs)
    while not progress["done"] and progress["epoch"] < progress["budget"]:
        epoch = progress["epoch"] + 1
        start = time.perf_counter()
        torch.manual_seed(settings.seed + epoch)  # dropout masks: same epoch, same masks
        gen = torch.Generator().manual_seed(settings.seed * 7919 + epoch)
        order = torch.randperm(len(windows), generator=gen)  # [N]
        if 0 < settings.epoch_windows < len(windows):
            order = order[: settings.epoch_windows]  # [M] a fresh sample every epoch
        order = order.to(device)
        train_loss = _train_epoch(module, windows, order, loss_fn, opt, settings)
        pass_seconds += time.perf_counter() - start  # the float() in _train_epoch synced
        seen += len(order)
        val_loss = _val_loss(module, val, loss_fn, settings.batch_size * 4, cross_fit, epoch)
        elapsed = time.perf_counter() - start
        seconds += elapsed
        improved = val_loss < progress["best_val"]
        if improved:
            progress.update(best_val=val_loss, best_epoch=epoch)
            best = checkpoint.state_copy(module)
        progress["train"].append(train_loss)
        progress["val"].append(val_loss)
        progress["epoch"] = epoch
        progress["done"] = epoch - progress["best_epoch"] >= settings.patience
        if not improved and settings.schedule == "plateau":
            for group in opt.param_groups:
                group["lr"] *= PLATEAU_FACTOR
        _extend_budget(progress, settings)
        if settings.time_budget > 0 and seconds >= settings.time_budget and not progress["done"]:
            log.info("time budget of %.0f s spent after epoch %d; stopping", seconds, epoch)
            progress["done"] = True
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            if improved:
                save_file(best, str(checkpoint_dir / "best.safetensors"))
            if cross_fit is not None:
                _save_halves(checkpoint_dir, progress, cross_fit)
            checkpoint.save(checkpoint_dir, module, opt, progress)
        if callback is not None:
            callback(EpochStats(epoch, progress["train"][-1], val_loss, elapsed, improved))
    module.load_state_dict(best)
    module.eval()
    return FitReport(
        epochs=progress["epoch"],
        best_epoch=progress["best_epoch"],
        train_losses=tuple(progress["train"]),
        val_losses=tuple(progress["val"]),
        seconds=seconds,
        train_windows=len(windows),
        windows_per_second=seen / pass_seconds if pass_seconds > 0 else 0.0,
        stopped_early=bool(progress["done"]),
        device=str(device),
    )
