"""MLflow, and only here for runs and models: the tracker (runs, params, metrics, artifacts,
registered versions, aliases), the pyfunc wrapper logged from code, the champion gate and the
`compare` leaderboard.

May import: `models`, `training.errors`, `training.settings`, `training.data`,
`training.evaluation`.
"""
