"""Reading the service's YAML configuration files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from server.errors import ConfigurationError


def load_mapping(path: Path, what: str) -> dict[str, Any]:
    """The file's top-level mapping; ConfigurationError says which file (`what`) is wrong and how."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{what} file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{what} file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{what} file {path} must hold a mapping")
    return data
