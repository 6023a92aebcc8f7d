"""Data sources, splits, metrics, baselines, MLflow tracking, retraining and the CLI."""
