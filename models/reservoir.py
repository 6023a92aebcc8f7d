"""Echo-state reservoir primitives: fixed random weights, the leaky tanh recurrence, and the
closed-form ridge readout (models.esn builds the forecaster on them).

Nothing here changes torch's thread count: it is process-wide, so changing it per call races
when requests run in a thread pool. The ESN's work is a chain of small matmuls (latency-bound),
so on a shared CPU one intra-op thread is fastest; set it once where the process starts (the
service does, from its settings: `torch.set_num_threads`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from models.config import ESNConfig

_EPS = 1e-8


def reservoir_weights(config: ESNConfig, inputs: int) -> tuple[Tensor, Tensor, Tensor]:
    """The fixed random matrices: (w_in [N, D], w [N, N], bias [N]), float32 on the CPU.

    One torch.Generator per matrix, seeded from `config.seed` through numpy's SeedSequence, so
    changing one matrix's shape never shifts another's draws.
    """
    n, scale = config.reservoir_size, config.input_scaling
    seeds = np.random.SeedSequence(config.seed).generate_state(3)
    gen = [torch.Generator().manual_seed(int(s)) for s in seeds]
    w_in = (torch.rand(n, inputs, generator=gen[0], dtype=torch.float64) * 2 - 1) * scale
    bias = (torch.rand(n, generator=gen[1], dtype=torch.float64) * 2 - 1) * scale
    mask = torch.rand(n, n, generator=gen[2], dtype=torch.float64) < config.density  # [N, N]
    w = torch.randn(n, n, generator=gen[2], dtype=torch.float64) * mask  # [N, N]
    radius = float(torch.linalg.eigvals(w).abs().max())
    if radius > 0:  # an all-zero draw (tiny N, low density) stays zero: a pure input map
        w = w * (config.spectral_radius / radius)
    return w_in.float(), w.float(), bias.float()


def run_reservoir(
    inputs: Tensor, w_in: Tensor, w: Tensor, bias: Tensor, leak: float, *, keep_all: bool
) -> Tensor:
    """Run the leaky tanh reservoir (leak rate a = `leak`) from a zero state over `inputs`
    u_t [B, T, D], with w_in [N, D], w [N, N], bias [N].

    Returns every state [B, T, N] when `keep_all` (training), else the last one [B, N].
    """
    b, t_len, d = inputs.shape
    n = w.shape[0]
    w_t = w.T.contiguous()  # [N, N], so x @ w_t = (W x)^T
    # time-major input drive W_in u_t + b for every step in one matmul: [T, B, N]
    steps = inputs.transpose(0, 1).reshape(t_len * b, d)  # [T*B, D]
    drive = torch.addmm(bias, steps, w_in.T).view(t_len, b, n)  # [T, B, N]
    pre = inputs.new_empty(b, n)  # [B, N] pre-activation, then its tanh
    out = inputs.new_empty(t_len, b, n) if keep_all else None  # [T, B, N]
    state = inputs.new_zeros(b, n)  # [B, N]
    for t in range(t_len):
        torch.addmm(drive[t], state, w_t, out=pre).tanh_()  # [B, N] @ [N, N] + drive
        if out is None:
            state.lerp_(pre, leak)  # (1 - a) x + a tanh(...)
        else:
            state = torch.lerp(state, pre, leak, out=out[t])
    return state if out is None else out.transpose(0, 1)  # [B, N] or [B, T, N] (a view)


def normal_equations(features: Tensor, targets: Tensor) -> tuple[Tensor, ...]:
    """The normal equations of ridge regression with the intercept from centring.

    Minimising mean_i ||y_i - z_i W - c||^2 + ridge * ||D W||^2 (D the feature stds: ridge on
    standardised features) means solving (Zs^T Zs / n + ridge I) V = Zs^T Yc / n; `solve_ridge`
    does that for one penalty (torch.linalg.solve, never an inverse). From float64 `features`
    z_i [n, F] and `targets` y_i [n, H]: (Zs^T Zs / n [F, F], Zs^T Yc / n [F, H], mean_z [F],
    mean_y [H], std_z [F]).
    """
    n = features.shape[0]
    mean_z, mean_y = features.mean(0), targets.mean(0)  # [F], [H]
    centred = features - mean_z  # [n, F]
    std_z = centred.pow(2).mean(0).sqrt().clamp_min(_EPS)  # [F]; constant columns stay 0
    zs = centred / std_z  # [n, F]
    return zs.T @ zs / n, zs.T @ (targets - mean_y) / n, mean_z, mean_y, std_z


def solve_ridge(
    gram: Tensor, cross: Tensor, mean_z: Tensor, mean_y: Tensor, std_z: Tensor, ridge: float
) -> tuple[Tensor, Tensor]:
    """(weight [F, H], bias [H]) for one ridge penalty from `normal_equations`' output, so many
    penalties can be tried on one set of normal equations."""
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    v = torch.linalg.solve(gram + ridge * eye, cross)  # [F, H] on standardised features
    weight = v / std_z[:, None]  # [F, H] on raw features
    return weight, mean_y - mean_z @ weight  # [F, H], [H]
