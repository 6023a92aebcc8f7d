"""Console entry point `forecast`: imports every command module so each registers itself."""

from __future__ import annotations

from training import cli_data  # noqa: F401  (registers datasets, baseline)
from training.cli_app import app


def main() -> None:
    """Run the `forecast` CLI."""
    app()


if __name__ == "__main__":
    main()
