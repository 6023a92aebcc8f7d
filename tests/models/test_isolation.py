"""models/ runs on a bare box: importing and using it needs none of mlflow, pandas, fastapi."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = ("mlflow", "pandas", "fastapi", "training", "service")
    for name in BLOCKED:
        sys.modules[name] = None  # `import name` now raises ImportError

    import numpy as np
    from models import io
    from models.base import SeriesData
    import models.recurrent, models.esn, models.baselines  # every family imports

    y = np.sin(np.arange(100) / 3).astype(np.float32)
    extra = {
        "gru": {"hidden_size": 4, "epochs": 1, "segment_length": 4},
        "esn": {"reservoir_size": 8, "washout": 12},
        "kalman": {},
    }
    for family in ("gru", "esn", "kalman"):
        config = io.config_from_dict(
            {"family": family, "lookback": 12, "max_horizon": 3, **extra[family]}
        )
        model = io.create(config)
        model.fit([SeriesData(y[:70])], [SeriesData(y[58:])])
        assert np.isfinite(model.predict(y[None, -12:], 5).mean).all()
    loaded = sorted(m for m, v in sys.modules.items() if m.split(".")[0] in BLOCKED and v)
    assert not loaded, loaded
    print("ok")
    """
)


def test_models_import_and_run_without_mlflow_pandas_fastapi() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
