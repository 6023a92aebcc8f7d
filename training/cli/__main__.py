"""`python -m training.cli ...` runs the `forecast` CLI."""

from training.cli import main

main()
