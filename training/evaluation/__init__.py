"""How a forecast is judged: time splits, the benchmark protocols, windows over a frame, the
naive / seasonal-naive / Kalman baselines, the metrics, rolling-origin backtests and the
figures drawn from them.

May import: `models`, `training.errors`, `training.settings`, `training.data`.
"""
