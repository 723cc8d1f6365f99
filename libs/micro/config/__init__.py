"""Layered, typed, hot-reloaded configuration."""
