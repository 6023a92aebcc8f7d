"""One training job from start to end: the experiment spec (TOML file or flags), its
preparation into train/validation/test windows, and the pipeline that fits, scores, logs,
registers and gates the model.

May import: `models`, `training.errors`, `training.settings`, `training.data`,
`training.store`, `training.evaluation`, `training.registry`.
"""
