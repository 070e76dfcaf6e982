"""Reading the service's YAML configuration files, with errors that name the file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from server.errors import ConfigurationError

K = TypeVar("K")
V = TypeVar("V")


class FrozenMapping(Mapping[K, V]):
    """A read-only mapping for configuration values. Unlike MappingProxyType it pickles, so
    Settings (which holds the parsed configuration) reach server processes started with spawn."""

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


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
