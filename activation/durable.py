"""Writes that survive a crash: a position, a dead letter or a file sink's lines are relied on
only once they are on disk, so each write is fsynced (and its folder, when it made a new name)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def append_durably(path: Path, text: str) -> None:
    """Appends, then fsyncs the file (and its folder when the file is new), before anyone relies on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    if created:
        fsync_folder(path.parent)


def replace_durably(path: Path, text: str) -> None:
    """Temp file, fsync, rename, fsync of the folder: after a crash the file holds the old or the new text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """A new or renamed file is durable only once its folder's entry is."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
