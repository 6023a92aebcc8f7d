"""Training checkpoints: the files that let a stopped fit resume where it left off.

One folder per fit: `last.safetensors` (weights after the last epoch), `optimizer.safetensors`
(AdamW's moments), `best.safetensors` (written by the loop) and `progress.json`, written last,
which makes an epoch count. The loop (models.loop) decides what and when; this module only
reads and writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

log = logging.getLogger(__name__)


def state_copy(module: nn.Module) -> dict[str, Tensor]:
    """A detached, contiguous copy of the module's weights and buffers."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def save(
    directory: Path, module: nn.Module, opt: torch.optim.Optimizer, progress: dict[str, Any]
) -> None:
    """Last weights, optimizer state and `progress` (epoch, losses, budget) of one epoch."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state_copy(module), str(directory / "last.safetensors"))
    opt_state = opt.state_dict()
    tensors = {
        f"{pid}.{key}": value.detach().contiguous()
        for pid, slots in opt_state["state"].items()
        for key, value in slots.items()
    }
    save_file(tensors, str(directory / "optimizer.safetensors"))
    progress = {**progress, "param_groups": opt_state["param_groups"]}
    tmp = directory / "progress.json.tmp"
    tmp.write_text(json.dumps(progress))
    tmp.replace(directory / "progress.json")  # the JSON is the commit point of an epoch


def load(
    directory: Path, module: nn.Module, opt: torch.optim.Optimizer, fingerprint: str
) -> dict[str, Any] | None:
    """Load what `save` wrote into `module` and `opt`; its progress, or None when there is
    no checkpoint or it is for another config (`fingerprint`)."""
    path = directory / "progress.json"
    if not path.exists():
        return None
    progress: dict[str, Any] = json.loads(path.read_text())
    if progress.get("fingerprint") != fingerprint:
        log.info("checkpoint in %s is for another config; starting afresh", directory)
        return None
    device = next(module.parameters()).device
    module.load_state_dict(load_file(str(directory / "last.safetensors"), device=str(device)))
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in load_file(str(directory / "optimizer.safetensors")).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": progress["param_groups"]})
    log.info("resuming from epoch %d checkpoint in %s", progress["epoch"], directory)
    return progress
