"""The delivery runner: segments' enter and exit changes, delivered to destinations at least once.

Each destination runs on a thread of its own: it watches its segment after its own position
and delivers the changes in batches (full, or due after batch_seconds) to a webhook or a file.
A position is saved (atomically, in state_dir/<destination>.position) only once its batch was
delivered or dead-lettered, so a crash at any moment re-delivers at most the batches in hand
and never skips one:

- webhook: a 2xx answer delivers the batch. 408, 429, 5xx, refused connections and timeouts
  are retried with capped exponential backoff and jitter, under the same Idempotency-Key;
  other answers, and the last failed attempt, append the batch to the dead-letter file (with
  the error), and the runner moves on.
- file: lines are appended and fsynced before the position moves; on restart the position is
  the later of the saved one and the file's last line, so a crash between the two writes no
  duplicate (a line torn by the crash is cut off first).
- OUT_OF_RANGE (the position was dropped by retention) stops the destination with an error:
  going on from the oldest retained change would lose changes without a word.
- UNAVAILABLE and the other transient codes reconnect after the delivered position, with backoff.

A stop (SIGTERM, SIGINT) lets an HTTP attempt in flight finish, then abandons the batch in
hand without saving its position: the next run delivers it.
"""

from __future__ import annotations

import csv
import enum
import fcntl
import http.client
import io
import json
import logging
import os
import queue
import random
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, Protocol

import grpc
from identity.v1 import segment_service_pb2 as seg

from client.destinations import DeliveryConfig, Destination, ExportFile, Webhook
from client.messages import SegmentChange

log = logging.getLogger(__name__)

ChangeSource = Callable[[str, int], Iterable[SegmentChange]]
"""(segment, after_position) -> the segment's changes after the position; Segments(channel).watch is one."""

# gRPC codes after which the same request may well succeed: reconnect rather than stop.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
RETRYABLE_HTTP = frozenset({408, 429})
FILE_COLUMNS = ("position", "segment", "profile_id", "kind", "at", "cause")
KIND_NAMES = {seg.CHANGE_KIND_ENTER: "enter", seg.CHANGE_KIND_EXIT: "exit"}
USER_AGENT = "identity-delivery/1"
# How often a waiting destination looks at the stop flag.
STOP_POLL_SECONDS = 0.1
# Changes read ahead of delivery, per destination: enough to fill a batch while one is sent.
READ_AHEAD = 1000


class DeliveryError(Exception):
    """A destination that cannot go on: its state, its file, or its change feed is unusable."""


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead-lettered"
    # The runner is stopping; the batch is delivered again after the restart.
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Batch:
    """Consecutive changes of one segment for one destination, delivered (or dead-lettered) as one."""

    destination: str
    segment: str
    changes: tuple[SegmentChange, ...]

    @property
    def first_position(self) -> int:
        return int(self.changes[0].position)

    @property
    def last_position(self) -> int:
        return int(self.changes[-1].position)

    @property
    def idempotency_key(self) -> str:
        return f"{self.destination}:{self.segment}:{self.first_position}-{self.last_position}"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        changes = [{key: value for key, value in change_record(c).items() if key != "segment"} for c in self.changes]
        return {"destination": self.destination, "segment": self.segment, "changes": changes}


def change_record(change: SegmentChange) -> dict[str, Any]:
    """A change as JSON: kind "enter" or "exit", at in ISO-8601 (None when the server sent none)."""
    return {
        "position": int(change.position),
        "segment": change.segment,
        "profile_id": change.profile_id,
        "kind": KIND_NAMES.get(change.kind, "unspecified"),
        "at": change.at.ToJsonString() if change.HasField("at") else None,
        "cause": change.cause,
    }


@dataclass
class DestinationStatus:
    """What one destination did in this run; error says why it stopped, when it stopped by itself."""

    destination: str
    segment: str
    position: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    error: str | None = None


class Sink(Protocol):
    def resume_position(self, saved: int) -> int:
        """The position to watch after, given the one saved."""

    def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
        """Delivers the batch, or dead-letters it, or abandons it once stop is set."""


# ---- positions ---------------------------------------------------------------------------


class PositionStore:
    """Each destination's last delivered position: one small file per destination, replaced atomically."""

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
        """Temp file, fsync, rename, fsync of the folder: after a crash the file holds the old or the new position."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{destination}.", suffix=".tmp", dir=self.state_dir)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(f"{position}\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.file(destination))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_folder(self.state_dir)

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


# ---- webhook -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    error: str
    retryable: bool
    retry_after: float | None = None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 of a POST with a GET and no body: a redirect is an error here."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSender:
    """POSTs each batch as JSON; retries what may pass on a later try; dead-letters the rest."""

    def __init__(self, destination: Destination, webhook: Webhook,
                 jitter: Callable[[], float] = random.random) -> None:
        self.destination = destination
        self.webhook = webhook
        self._jitter = jitter
        self._opener = urllib.request.build_opener(_RefuseRedirects())

    def resume_position(self, saved: int) -> int:
        return saved

    def deliver(self, batch: Batch, stop: threading.Event) -> Outcome:
        body = json.dumps(batch.payload(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"User-Agent": USER_AGENT, **self.webhook.headers, "Content-Type": "application/json",
                   "Idempotency-Key": batch.idempotency_key}
        attempts, attempt = self.webhook.max_attempts, 1
        while (failure := self._post(body, headers)) is not None:
            if not failure.retryable or attempt == attempts:
                self._dead_letter(batch, attempt, failure.error)
                return Outcome.DEAD_LETTERED
            delay = self._backoff(attempt, failure.retry_after)
            log.warning("destination %s: batch %s, attempt %d of %d failed (%s); next in %.2f s",
                        self.destination.name, batch.idempotency_key, attempt, attempts, failure.error, delay)
            if stop.wait(delay):
                return Outcome.ABANDONED
            attempt += 1
        log.debug("destination %s: delivered %s", self.destination.name, batch.idempotency_key)
        return Outcome.DELIVERED

    def _post(self, body: bytes, headers: dict[str, str]) -> _Failure | None:
        request = urllib.request.Request(self.webhook.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.webhook.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            retryable = exc.code in RETRYABLE_HTTP or exc.code >= 500
            return _Failure(f"HTTP {exc.code} {exc.reason}{_excerpt(exc)}", retryable, _retry_after(exc.headers))
        except urllib.error.URLError as exc:
            return _Failure(f"{type(exc.reason).__name__}: {exc.reason}", True)
        except (OSError, http.client.HTTPException) as exc:
            # timeouts while reading the answer, connections reset or closed half-way
            return _Failure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, True)
        return None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential, capped, with jitter (half to all of it), so that many runners do not retry in step."""
        settings = self.webhook
        delay = min(settings.max_backoff_seconds, settings.backoff_seconds * 2.0 ** (attempt - 1))
        delay *= 0.5 + self._jitter() / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.max_backoff_seconds))
        return delay

    def _dead_letter(self, batch: Batch, attempts: int, error: str) -> None:
        record = {
            "destination": batch.destination, "segment": batch.segment, "idempotency_key": batch.idempotency_key,
            "first_position": batch.first_position, "last_position": batch.last_position, "attempts": attempts,
            "error": error, "dead_lettered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "url": self.webhook.url, "payload": batch.payload(),
        }
        append_durably(self.webhook.dead_letter, json.dumps(record, ensure_ascii=False) + "\n")
        log.error("destination %s: batch %s dead-lettered to %s after %d attempt(s): %s", self.destination.name,
                  batch.idempotency_key, self.webhook.dead_letter, attempts, error)


def _excerpt(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(200).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return ""
    return f": {' '.join(text.split())}" if text else ""


def _retry_after(headers: Message | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is rare for webhooks and ignored."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# ---- file ----------------------------------------------------------------------------------


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
        records = [change_record(change) for change in batch.changes]
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


def append_durably(path: Path, text: str) -> None:
    """Appends, then fsyncs the file (and its folder when the file is new), before anyone relies on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    if created:
        _fsync_folder(path.parent)


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


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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


# ---- the runner ------------------------------------------------------------------------------


def sink_for(destination: Destination) -> Sink:
    target = destination.target
    if isinstance(target, Webhook):
        return WebhookSender(destination, target)
    return FileAppender(destination, target)


class DeliveryRunner:
    """Delivers every destination of a config, each on a thread of its own, until stopped.

    With idle_seconds (the CLI's --once), a destination ends once its feed brought nothing for
    that long and its batch is delivered, and transient feed errors are retried at most
    max_reconnects times in a row; without, it follows its segment until stop() is called.
    """

    def __init__(self, config: DeliveryConfig, source: ChangeSource, *, idle_seconds: float | None = None,
                 reconnect_seconds: float = 0.5, max_reconnect_seconds: float = 30.0,
                 max_reconnects: int | None = None, sinks: Callable[[Destination], Sink] = sink_for) -> None:
        self.stopping = threading.Event()
        store = PositionStore(config.state_dir)
        self.workers = [
            DestinationWorker(destination, sinks(destination), store, source, self.stopping,
                              idle_seconds=idle_seconds, reconnect_seconds=reconnect_seconds,
                              max_reconnect_seconds=max_reconnect_seconds, max_reconnects=max_reconnects)
            for destination in config.destinations
        ]

    def run(self) -> list[DestinationStatus]:
        """Runs every destination until each has ended; answers what each did."""
        threads = [threading.Thread(target=worker.run, name=f"deliver-{worker.destination.name}", daemon=True)
                   for worker in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            # short joins, so that the main thread still handles signals
            while thread.is_alive():
                thread.join(0.2)
        return [worker.status for worker in self.workers]

    def stop(self) -> None:
        """Asks every destination to stop; a batch not yet delivered is abandoned, its position not saved."""
        self.stopping.set()


@dataclass(frozen=True)
class _End:
    """The end of one feed: error is why it ended (None for a stream that just ended)."""

    error: BaseException | None = None
    received: bool = False
    idle: bool = False


class DestinationWorker:
    """One destination: watch after the position, batch, deliver, save the position, and again."""

    def __init__(self, destination: Destination, sink: Sink, store: PositionStore, source: ChangeSource,
                 stopping: threading.Event, *, idle_seconds: float | None, reconnect_seconds: float,
                 max_reconnect_seconds: float, max_reconnects: int | None) -> None:
        self.destination = destination
        self.sink = sink
        self.store = store
        self.source = source
        self.stopping = stopping
        self.idle_seconds = idle_seconds
        self.reconnect_seconds = reconnect_seconds
        self.max_reconnect_seconds = max_reconnect_seconds
        self.max_reconnects = max_reconnects
        self.status = DestinationStatus(destination.name, destination.segment)

    def run(self) -> None:
        """Delivers until stopped, idle or failed; never raises: a failure is logged and kept in status.error."""
        try:
            with self.store.lock(self.destination.name):
                self._deliver_changes()
        except DeliveryError as exc:
            self._fail(str(exc))
        except Exception as exc:
            log.exception("destination %s: stopped by an unexpected error", self.destination.name)
            self._fail(f"{type(exc).__name__}: {exc}")

    def _deliver_changes(self) -> None:
        name = self.destination.name
        self.status.position = self.sink.resume_position(self.store.load(name))
        log.info("destination %s: watching segment %s after position %d", name, self.destination.segment,
                 self.status.position)
        failures = 0
        while not self.stopping.is_set():
            end = self._follow()
            if self.stopping.is_set() or end.idle:
                return
            error = end.error
            if error is None and self.idle_seconds is not None:
                return
            failures = 0 if end.received else failures + 1
            if error is not None:
                code = _status_code(error)
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    raise DeliveryError(f"position {self.status.position} of segment {self.destination.segment} is "
                                        f"no longer retained; stopped rather than skip changes "
                                        f"({_error_text(error)})")
                if code not in TRANSIENT_CODES:
                    if not isinstance(error, grpc.RpcError):
                        log.error("destination %s: the change feed failed", name, exc_info=error)
                    raise DeliveryError(f"the change feed of segment {self.destination.segment} failed: "
                                        f"{_error_text(error)}")
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise DeliveryError(f"gave up after {failures} failed reconnects: {_error_text(error)}")
            delay = self._backoff(failures)
            log.warning("destination %s: the change feed ended (%s); reconnecting in %.2f s", name,
                        "end of stream" if error is None else _error_text(error), delay)
            self.stopping.wait(delay)

    def _follow(self) -> _End:
        """One feed: read, batch, deliver; ends with the feed, when idle, or when stopping."""
        after = self.status.position
        feed = _Feed(lambda: self.source(self.destination.segment, after), f"watch-{self.destination.name}")
        batch: list[SegmentChange] = []
        due = 0.0
        latest = after
        received = False
        quiet_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                waits = [STOP_POLL_SECONDS]
                if batch:
                    waits.append(due - now)
                elif self.idle_seconds is not None:
                    waits.append(quiet_since + self.idle_seconds - now)
                item = feed.get(max(0.0, min(waits)))
                now = time.monotonic()
                if isinstance(item, _End):
                    if batch and not self._deliver(batch):
                        break
                    return _End(item.error, received)
                if item is not None:
                    received = True
                    if item.position <= latest:
                        continue  # delivered already: the server repeated it
                    latest = item.position
                    if not batch:
                        due = now + self.destination.batch_seconds
                    batch.append(item)
                    quiet_since = now
                if batch and (len(batch) >= self.destination.batch_size or now >= due):
                    if not self._deliver(batch):
                        break
                    batch = []
                    quiet_since = time.monotonic()
                elif not batch and self.idle_seconds is not None and now - quiet_since >= self.idle_seconds:
                    return _End(received=received, idle=True)
            return _End(received=received)
        finally:
            feed.close()

    def _deliver(self, changes: list[SegmentChange]) -> bool:
        """Delivers (or dead-letters) a batch and saves its position; False when it was abandoned."""
        batch = Batch(self.destination.name, self.destination.segment, tuple(changes))
        outcome = self.sink.deliver(batch, self.stopping)
        if outcome is Outcome.ABANDONED:
            log.info("destination %s: stopping; batch %s abandoned, to be delivered by the next run",
                     self.destination.name, batch.idempotency_key)
            return False
        self.store.save(self.destination.name, batch.last_position)
        self.status.position = batch.last_position
        if outcome is Outcome.DELIVERED:
            self.status.delivered += len(changes)
        else:
            self.status.dead_lettered += 1
        return True

    def _backoff(self, failures: int) -> float:
        delay = min(self.max_reconnect_seconds, self.reconnect_seconds * 2.0 ** max(0, failures - 1))
        return delay * (0.5 + random.random() / 2)

    def _fail(self, message: str) -> None:
        self.status.error = message
        log.error("destination %s: %s", self.destination.name, message)


class _Feed:
    """Reads one change stream on a thread of its own, so that the destination can wait with a
    timeout (a batch falls due, the feed falls idle) and cancel a read that blocks."""

    def __init__(self, open_stream: Callable[[], Iterable[SegmentChange]], name: str) -> None:
        self._queue: queue.Queue[SegmentChange | _End] = queue.Queue(maxsize=READ_AHEAD)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream: Iterable[SegmentChange] | None = None
        threading.Thread(target=self._read, args=(open_stream,), name=name, daemon=True).start()

    def get(self, timeout: float) -> SegmentChange | _End | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Cancels the stream if it can be cancelled (a gRPC one can); the reader stops at its next change."""
        with self._lock:
            self._closed.set()
            stream = self._stream
        if stream is not None:
            _cancel(stream)

    def _read(self, open_stream: Callable[[], Iterable[SegmentChange]]) -> None:
        error: BaseException | None = None
        try:
            stream = open_stream()
            with self._lock:
                self._stream = stream
                closed = self._closed.is_set()
            if closed:
                _cancel(stream)
                return
            for change in stream:
                if not self._put(change):
                    return
        except Exception as exc:
            error = exc
        self._put(_End(error))

    def _put(self, item: SegmentChange | _End) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=STOP_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def _cancel(stream: Iterable[SegmentChange]) -> None:
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()


def _status_code(error: BaseException) -> grpc.StatusCode | None:
    code = getattr(error, "code", None) if isinstance(error, grpc.RpcError) else None
    return code() if callable(code) else None


def _error_text(error: BaseException) -> str:
    code, details = _status_code(error), getattr(error, "details", None)
    if code is not None and callable(details):
        return f"{code.name}: {details()}"
    return f"{type(error).__name__}: {error}"


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call stop(); a second SIGINT interrupts at once (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def handle(number: int, frame: FrameType | None) -> None:
        log.info("%s: stopping after the HTTP attempt in flight", signal.Signals(number).name)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
