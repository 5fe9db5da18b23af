"""Command line `arsample`."""

# Bound after the submodule import, so ``arsample.cli.main`` is always the function, never the module.
from .main import main

__all__ = ["main"]
