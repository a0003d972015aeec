"""Allows `python -m twinflow`."""

from twinflow.cli import main

main()
