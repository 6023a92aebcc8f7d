"""Console entry point `forecast`: imports every command module so each registers itself."""

from __future__ import annotations

# Each import registers its commands on the shared typer app.
from training import cli_data, cli_retrain, cli_serve, cli_store, cli_train  # noqa: F401
from training.cli_app import app


def main() -> None:
    """Run the `forecast` CLI."""
    app()


if __name__ == "__main__":
    main()
