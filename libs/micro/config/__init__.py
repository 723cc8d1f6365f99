"""Layered, typed, hot-reloaded configuration.

model defaults < local files < ConfigMaps < Secrets < environment overrides; see
docs/configuration.md.
"""

from micro.config.errors import ConfigError
from micro.config.handle import ConfigHandle
from micro.config.loader import load_config

__all__ = ["ConfigError", "ConfigHandle", "load_config"]
