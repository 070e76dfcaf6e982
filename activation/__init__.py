"""Activation: segments' enter and exit changes delivered to webhooks, files, Kafka and
tracking-API endpoints, at least once.

A long-running application built on the client library (client/), never on the server:

    destinations.py     the destinations file, read and validated once at start
    feed.py             a segment's change feed, read ahead; reconnect or stop on its errors
    sinks.py            Batch, Outcome and the Sink protocol every destination implements
    webhook.py          POST per batch, retries with backoff under one Idempotency-Key, dead letters
    file_sink.py        JSON Lines or CSV appends that tell how far they got; replay_membership
    kafka_sink.py       a message per change, keyed by profile, idempotent producer, acks=all
    tracking_sink.py    identify + track per change POSTed to a tracking API's /v1/batch
    audience_messages.py  changes as the tracking spec's identify and track
    ad_audiences.py     changes as Google Customer Match / Meta Custom Audience operations, hashed
    profile_identifiers.py  the allowed identifiers of a batch's profiles, looked up
    consent_gate.py     requires_consent: the segment must require it; ENTERs without it are withheld
    positions.py        each destination's position (atomic file) and its one-runner lock
    durable.py          fsynced appends and atomic replaces
    backoff.py          the one backoff rule (webhook retries, feed reconnects)
    delivery_runner.py  a thread per destination: follow, batch, deliver, save the position
    signals.py          SIGTERM / SIGINT as a stop

`identity deliver --config FILE` runs it; from Python:

    from activation import DeliveryRunner, load_destinations
    from activation.consent_gate import lookup_consent, segment_rules
    from activation.profile_identifiers import lookup_identifiers
    from client import IdentityClient

    with IdentityClient() as identity:
        statuses = DeliveryRunner(load_destinations("destinations.yaml"), identity.segments.watch,
                                  identifiers=lookup_identifiers(identity), consent=lookup_consent(identity),
                                  rules=segment_rules(identity)).run()
"""

from activation.delivery_runner import DeliveryRunner, DestinationStatus
from activation.destinations import DeliveryConfig, Destination, DestinationsError, ExportFile, Webhook
from activation.destinations import load_destinations, parse_destinations
from activation.feed import ChangeSource
from activation.file_sink import replay_membership
from activation.positions import PositionStore
from activation.signals import stop_on_signals
from activation.sinks import Batch, DeliveryError, Outcome, Sink

__all__ = [
    "Batch",
    "ChangeSource",
    "DeliveryConfig",
    "DeliveryError",
    "DeliveryRunner",
    "Destination",
    "DestinationStatus",
    "DestinationsError",
    "ExportFile",
    "Outcome",
    "PositionStore",
    "Sink",
    "Webhook",
    "load_destinations",
    "parse_destinations",
    "replay_membership",
    "stop_on_signals",
]
