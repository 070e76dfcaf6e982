"""The file sink: changes appended to a JSON Lines or CSV file, which itself says how far it got.

Lines are appended and fsynced before the position moves; on restart the position is the later
of the saved one and the file's last line, so a crash between the two writes no duplicate (a
line torn by the crash is cut off first).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from activation.ad_audiences import AUDIENCE_FORMATS, audience_records
from activation.destinations import Destination, ExportFile
from activation.durable import append_durably
from activation.sinks import Batch, DeliveryError, Outcome

log = logging.getLogger(__name__)

FILE_COLUMNS = ("position", "segment", "profile_id", "kind", "at", "cause")


class FileAppender:
    """Appends changes to a JSON Lines or CSV file; the file itself says how far it got."""

    def __init__(self, destination: Destination, export: ExportFile) -> None:
        self.destination = destination
        self.path = export.path
        self.format = export.format

    def resume_position(self, saved: int) -> int:
        """The later of the saved position and the file's last line: a crash after the append but
        before the save would otherwise append those lines again. A file rotated away leaves the saved one."""
        if not self.path.exists():
            return saved
        self._cut_torn_line()
        written = self._last_position()
        if written > saved:
            log.info("destination %s: %s holds changes up to position %d, after the saved %d; resuming after it",
                     self.destination.name, self.path, written, saved)
        return max(saved, written)

    def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
        """Appends and fsyncs; an append takes milliseconds, so a stop waits for it."""
        if self.format in AUDIENCE_FORMATS:
            records = audience_records(batch, self.format)
        else:
            records = [batch.record(change) for change in batch.changes]
        if self.format == "csv":
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            if not self.path.exists() or self.path.stat().st_size == 0:
                writer.writerow(FILE_COLUMNS)
            writer.writerows([["" if r[c] is None else r[c] for c in FILE_COLUMNS] for r in records])
            lines = text.getvalue()
        else:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        append_durably(self.path, lines)
        return Outcome.DELIVERED

    def _cut_torn_line(self) -> None:
        with open(self.path, "r+b") as file:
            end = file.seek(0, os.SEEK_END)
            if end == 0:
                return
            file.seek(end - 1)
            if file.read(1) == b"\n":
                return
            keep = _last_newline(file, end) + 1
            file.truncate(keep)
            file.flush()
            os.fsync(file.fileno())
        log.warning("destination %s: %s ended in a line cut off mid-write; removed its %d bytes",
                    self.destination.name, self.path, end - keep)

    def _last_position(self) -> int:
        line = _last_line(self.path)
        if self.format == "csv":
            header = ",".join(FILE_COLUMNS)
            with open(self.path, encoding="utf-8") as file:
                first = file.readline().rstrip("\n")
            if first and first != header:
                raise DeliveryError(f"{self.path} does not start with the header {header}; write to a new file")
            if line in ("", header):
                return 0
            position = next(csv.reader([line]))[0]
        else:
            if not line:
                return 0
            try:
                position = json.loads(line)["position"]
            except (ValueError, KeyError, TypeError):
                raise DeliveryError(f"{self.path}: its last line is not a change written by this runner") from None
        try:
            return int(position)
        except (TypeError, ValueError):
            raise DeliveryError(f"{self.path}: its last line has no whole-number position: {line[:80]!r}") from None


def _last_line(path: Path) -> str:
    """The last non-empty line, read backwards from the end, so that a large file costs one small read."""
    with open(path, "rb") as file:
        end = file.seek(0, os.SEEK_END)
        size = 4096
        while True:
            start = max(0, end - size)
            file.seek(start)
            data = file.read(end - start).rstrip(b"\r\n")
            cut = data.rfind(b"\n")
            if cut >= 0 or start == 0:
                return data[cut + 1:].decode("utf-8")
            size *= 2


def _last_newline(file: BinaryIO, end: int) -> int:
    """The offset of the last newline before end, or -1."""
    position = end
    while position > 0:
        start = max(0, position - 4096)
        file.seek(start)
        found = file.read(position - start).rfind(b"\n")
        if found >= 0:
            return start + found
        position = start
    return -1


def replay_membership(path: str | Path) -> set[str]:
    """The members a file sink's changes add up to: each enter adds its profile, each exit removes it.
    A .csv path is read as CSV, anything else as JSON Lines."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as file:
        records: Iterable[dict[str, Any]]
        if path.suffix == ".csv":
            records = csv.DictReader(file)
        else:
            records = (json.loads(line) for line in file if line.strip())
        members: set[str] = set()
        for record in records:
            if record["kind"] == "enter":
                members.add(record["profile_id"])
            elif record["kind"] == "exit":
                members.discard(record["profile_id"])
    return members
