"""The one error type configuration loading raises."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be loaded: the message names the field and its source."""
