"""Each destination's last delivered position, and the lock that lets one runner deliver it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activation.durable import replace_durably
from activation.sinks import DeliveryError


class PositionStore:
    """One small file per destination (state_dir/<destination>.position), replaced atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def file(self, destination: str) -> Path:
        return self.state_dir / f"{destination}.position"

    def load(self, destination: str) -> int:
        """The saved position; 0 (everything retained) for a destination never delivered."""
        path = self.file(destination)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise DeliveryError(f"cannot read {path}: {exc.strerror}") from None
        if not text.strip().isdigit():
            raise DeliveryError(f"{path} does not hold a position (a whole number): {text[:40]!r}")
        return int(text)

    def save(self, destination: str, position: int) -> None:
        """After a crash the file holds the old or the new position, never a torn one."""
        replace_durably(self.file(destination), f"{position}\n")

    @contextmanager
    def lock(self, destination: str) -> Iterator[None]:
        """One runner per destination: two would deliver every change twice and race on the position."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{destination}.lock"
        with open(path, "a", encoding="utf-8") as file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeliveryError(f"another runner is delivering this destination (it holds {path})") from None
            try:
                yield
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
