"""Retraining on a schedule: one retrain cycle of a registered model, the per-model lock, the
schedule file, the scheduler process and its job tables.

May import everything in `training` below it: `data`, `store`, `evaluation`, `registry`,
`jobs`, `errors`, `settings`.
"""
