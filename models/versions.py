"""Library versions recorded in every saved model's metadata (meta.json)."""

from __future__ import annotations

import platform

import numpy as np
import safetensors
import torch


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model's numbers depend on."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "safetensors": str(getattr(safetensors, "__version__", "unknown")),
    }
