"""The delivery runner: every destination of a config on a thread of its own, until stopped.

A destination watches its segment after its own position and delivers the changes in batches
(full, or due after batch_seconds) to its sink. A position is saved only once its batch was
delivered or dead-lettered, so a crash at any moment re-delivers at most the batches in hand
and never skips one. A stop lets an HTTP attempt in flight finish, then abandons the batch in
hand without saving its position: the next run delivers it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from activation.backoff import backoff_delay
from activation.consent_gate import ConsentSource, RuleSource, missing_from_segment, withheld
from activation.destinations import DeliveryConfig, Destination, Kafka, Tracking, Webhook
from activation.feed import ChangeSource, open_feed, unrecoverable
from activation.delivery_metrics import DELIVERY
from activation.file_sink import FileAppender
from activation.kafka_sink import KafkaSender
from activation.positions import PositionStore
from activation.profile_identifiers import IdentifierSource, allowed
from activation.sinks import Batch, DeliveryError, Outcome, Sink
from activation.tracking_sink import TrackingSender
from activation.webhook import WebhookSender
from client.api import rpc_error_text
from client.messages import SegmentChange
from client.reader import Ended

log = logging.getLogger(__name__)

# How often a waiting destination looks at the stop flag.
STOP_POLL_SECONDS = 0.1
T = TypeVar("T")
# Failures of the segment check that a later try may not meet.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class ConsentGate:
    """How destinations that require consent check it: per batch, and on their segment at start."""

    consent: ConsentSource
    rules: RuleSource


@dataclass
class DestinationStatus:
    """What one destination did in this run; error says why it stopped, when it stopped by itself."""

    destination: str
    segment: str
    position: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    withheld: int = 0  # ENTERs of profiles that no longer granted the required consent
    error: str | None = None


def sink_for(destination: Destination) -> Sink:
    target = destination.target
    if isinstance(target, Webhook):
        return WebhookSender(destination, target)
    if isinstance(target, Kafka):
        return KafkaSender(destination, target)
    if isinstance(target, Tracking):
        return TrackingSender(destination, target)
    return FileAppender(destination, target)


class DeliveryRunner:
    """Delivers every destination of a config, each on a thread of its own, until stopped.

    With idle_seconds (the CLI's --once), a destination ends once its feed brought nothing for
    that long and its batch is delivered, and transient feed errors are retried at most
    max_reconnects times in a row; without, it follows its segment until stop() is called.
    """

    def __init__(self, config: DeliveryConfig, source: ChangeSource, *, idle_seconds: float | None = None,
                 reconnect_seconds: float = 0.5, max_reconnect_seconds: float = 30.0,
                 max_reconnects: int | None = None, sinks: Callable[[Destination], Sink] = sink_for,
                 identifiers: IdentifierSource | None = None, consent: ConsentSource | None = None,
                 rules: RuleSource | None = None) -> None:
        self.stopping = threading.Event()
        store = PositionStore(config.state_dir)
        needed = [d.name for d in config.destinations if d.identifiers]
        if needed and identifiers is None:
            raise DeliveryError(f"destinations {', '.join(needed)} send identifiers, and no way to look them up "
                                "was given (identifiers=lookup_identifiers(client))")
        gated = [d.name for d in config.destinations if d.requires_consent]
        if gated and (consent is None or rules is None):
            raise DeliveryError(f"destinations {', '.join(gated)} require consent, and no way to check it was given "
                                "(consent=lookup_consent(client), rules=segment_rules(client))")
        gate = ConsentGate(consent, rules) if consent is not None and rules is not None else None
        self.workers = [
            DestinationWorker(destination, sinks(destination), store, source, self.stopping,
                              idle_seconds=idle_seconds, reconnect_seconds=reconnect_seconds,
                              max_reconnect_seconds=max_reconnect_seconds, max_reconnects=max_reconnects,
                              identifiers=identifiers, gate=gate)
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
class _Followed:
    """How one feed ended: error is why (None for a stream that just ended); idle when it fell quiet."""

    error: BaseException | None = None
    received: bool = False
    idle: bool = False


@dataclass
class _InHand:
    """The changes read but not yet delivered, and the times that decide when they go."""

    latest: int
    quiet_since: float
    batch: list[SegmentChange] = field(default_factory=list)
    due: float = 0.0
    received: bool = False

    def take(self, change: SegmentChange, now: float, batch_seconds: float) -> None:
        self.received = True
        if change.position <= self.latest:
            return  # delivered already: the server repeated it
        self.latest = change.position
        if not self.batch:
            self.due = now + batch_seconds
        self.batch.append(change)
        self.quiet_since = now

    def delivered(self, now: float) -> None:
        self.batch = []
        self.quiet_since = now


class DestinationWorker:
    """One destination: watch after the position, batch, deliver, save the position, and again."""

    def __init__(self, destination: Destination, sink: Sink, store: PositionStore, source: ChangeSource,
                 stopping: threading.Event, *, idle_seconds: float | None, reconnect_seconds: float,
                 max_reconnect_seconds: float, max_reconnects: int | None,
                 identifiers: IdentifierSource | None = None, gate: ConsentGate | None = None) -> None:
        self.destination = destination
        self.identifiers = identifiers
        self.gate = gate
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
        finally:
            close = getattr(self.sink, "close", None)  # a sink holding connections lets them go
            if close is not None:
                close()

    def _deliver_changes(self) -> None:
        name = self.destination.name
        self.status.position = self.sink.resume_position(self.store.load(name))
        log.info("destination %s: watching segment %s after position %d", name, self.destination.segment,
                 self.status.position)
        failures = 0
        while not self.stopping.is_set():
            end = self._check_segment_requires_consent() or self._follow()
            if self.stopping.is_set() or end.idle or (end.error is None and self.idle_seconds is not None):
                return
            failures = 0 if end.received else failures + 1
            if end.error is not None:
                self._check_feed_error(end.error, failures)
            delay = backoff_delay(failures, self.reconnect_seconds, self.max_reconnect_seconds)
            log.warning("destination %s: the change feed ended (%s); reconnecting in %.2f s", name,
                        "end of stream" if end.error is None else rpc_error_text(end.error), delay)
            self.stopping.wait(delay)

    def _check_feed_error(self, error: BaseException, failures: int) -> None:
        """Raises the DeliveryError that stops the destination; returns when a reconnect is worth it."""
        fatal = unrecoverable(error, self.destination.segment, self.status.position)
        if fatal is not None:
            if not isinstance(error, grpc.RpcError):
                log.error("destination %s: the change feed failed", self.destination.name, exc_info=error)
            raise fatal
        if self.max_reconnects is not None and failures > self.max_reconnects:
            raise DeliveryError(f"gave up after {failures} failed reconnects: {rpc_error_text(error)}")

    def _follow(self) -> _Followed:
        """One feed: read, batch, deliver; ends with the feed, when idle, or when stopping."""
        hand = _InHand(latest=self.status.position, quiet_since=time.monotonic())
        with open_feed(self.source, self.destination.segment, hand.latest, f"watch-{self.destination.name}") as feed:
            while not self.stopping.is_set():
                item = feed.get(self._wait_seconds(hand))
                if isinstance(item, Ended):
                    if hand.batch and not self._deliver(hand.batch):
                        break
                    return _Followed(item.error, hand.received)
                now = time.monotonic()
                if item is not None:
                    hand.take(item, now, self.destination.batch_seconds)
                if hand.batch and (len(hand.batch) >= self.destination.batch_size or now >= hand.due):
                    if not self._deliver(hand.batch):
                        break
                    hand.delivered(time.monotonic())
                elif not hand.batch and self.idle_seconds is not None and now - hand.quiet_since >= self.idle_seconds:
                    return _Followed(received=hand.received, idle=True)
            return _Followed(received=hand.received)

    def _wait_seconds(self, hand: _InHand) -> float:
        """Until the batch in hand falls due, or the feed falls idle, but never past the next look at the stop flag."""
        now = time.monotonic()
        waits = [STOP_POLL_SECONDS]
        if hand.batch:
            waits.append(hand.due - now)
        elif self.idle_seconds is not None:
            waits.append(hand.quiet_since + self.idle_seconds - now)
        return max(0.0, min(waits))

    def _check_segment_requires_consent(self) -> _Followed | None:
        """A destination that requires consent delivers only a segment that requires it too:
        checked before every feed is opened, since a segment can be redefined meanwhile.
        Raises DeliveryError when it does not (or cannot be read); a transient failure ends
        like a feed that failed, to be tried again after the backoff."""
        if not self.destination.requires_consent or self.gate is None:
            return None
        try:
            rule = self.gate.rules(self.destination.segment)
        except grpc.RpcError as exc:
            if exc.code() in TRANSIENT:
                return _Followed(exc)
            raise DeliveryError(f"cannot read segment {self.destination.segment} to check its consent: "
                                f"{rpc_error_text(exc)}") from None
        problem = missing_from_segment(self.destination.segment, rule, self.destination.requires_consent)
        if problem:
            raise DeliveryError(problem)
        return None

    def _deliver(self, changes: list[SegmentChange]) -> bool:
        """Delivers (or dead-letters) a batch and saves its position; False when it was abandoned."""
        kept = self._with_consent(changes)
        identifiers = self._identifiers_of(kept) if kept is not None else None
        if kept is None or identifiers is None:
            return False
        name, last = self.destination.name, int(changes[-1].position)
        outcome = Outcome.DELIVERED
        if kept:
            span = (int(changes[0].position), last) if len(kept) < len(changes) else None
            batch = Batch(name, self.destination.segment, tuple(kept), identifiers, span)
            outcome = self.sink.deliver(batch, self.stopping)
            if outcome is Outcome.ABANDONED:
                log.info("destination %s: stopping; batch %s abandoned, to be delivered by the next run",
                         name, batch.idempotency_key)
                return False
        self.store.save(name, last)
        self.status.position = last
        DELIVERY.position.labels(name).set(last)
        if len(kept) < len(changes):
            self.status.withheld += len(changes) - len(kept)
            DELIVERY.withheld.labels(name).inc(len(changes) - len(kept))
        if not kept:
            return True
        if outcome is Outcome.DELIVERED:
            self.status.delivered += len(kept)
            DELIVERY.changes.labels(name).inc(len(kept))
            DELIVERY.batches.labels(name, "delivered").inc()
        else:
            self.status.dead_lettered += 1
            DELIVERY.dead_letters.labels(name).inc()
            DELIVERY.batches.labels(name, "dead_lettered").inc()
        return True

    def _with_consent(self, changes: list[SegmentChange]) -> list[SegmentChange] | None:
        """The batch without the ENTERs of profiles that do not grant the required consent now;
        None once stopping while the server cannot answer."""
        gate = self.gate
        if not self.destination.requires_consent or gate is None:
            return changes
        granted = self._retrying("consent", lambda: gate.consent([c.profile_id for c in changes]))
        if granted is None:
            return None
        held = withheld(changes, granted, self.destination.requires_consent)
        return [c for c in changes if c not in held] if held else changes

    def _retrying(self, what: str, call: Callable[[], T]) -> T | None:
        """call(), retried with backoff while the server cannot answer; None once stopping.
        A refusal a retry would meet again (PERMISSION_DENIED, ...) stops the destination."""
        attempt = 1
        while not self.stopping.is_set():
            try:
                return call()
            except grpc.RpcError as exc:
                if exc.code() not in TRANSIENT:
                    raise DeliveryError(f"looking up the batch's {what} failed: {rpc_error_text(exc)}") from None
                delay = backoff_delay(attempt, self.reconnect_seconds, self.max_reconnect_seconds)
                log.warning("destination %s: looking up the batch's %s failed (%s); again in %.2f s",
                            self.destination.name, what, rpc_error_text(exc), delay)
                self.stopping.wait(delay)
                attempt += 1
        return None

    def _identifiers_of(self, changes: list[SegmentChange]) -> dict[str, tuple[tuple[str, str], ...]] | None:
        """The allowed identifiers of the batch's profiles; retried with backoff while the server
        cannot answer, None once stopping (the batch is abandoned, delivered by the next run)."""
        source = self.identifiers
        if not self.destination.identifiers or source is None or not changes:
            return {}
        found = self._retrying("identifiers", lambda: source([change.profile_id for change in changes]))
        return None if found is None else allowed(found, self.destination.identifiers)

    def _fail(self, message: str) -> None:
        self.status.error = message
        log.error("destination %s: %s", self.destination.name, message)
