"""Everything between the data and a registered model: sources, evaluation, MLflow, jobs,
retraining, the series store and the `forecast` CLI.

Sub-packages, lowest first (each may import only those listed before it, and `models`):
`errors`/`settings` (modules), `store`, `data`, `evaluation`, `registry`, `jobs`,
`retraining`, `cli`. `tests/test_layers.py` enforces it.
"""
