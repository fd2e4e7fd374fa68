"""optai-tui: train image classifiers on remote GPU servers from the terminal."""

__version__ = "0.1.0"
