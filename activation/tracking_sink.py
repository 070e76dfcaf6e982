"""The tracking-spec sink: each batch POSTed to a tracking-API endpoint's /v1/batch, the way the
Segment and RudderStack SDKs send (and this service's own collector receives).

Per change an `identify` (the membership as a trait) and a `track` ("Audience Entered" or
"Audience Exited"), see audience_messages. The write key goes as HTTP Basic (the key as user
name, no password), as the SDKs send it. Delivery is the webhook's: 408, 429 and 5xx are retried
with backoff, honouring Retry-After; the rest, and the last failure, are dead-lettered (without
the write key).
"""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from activation.audience_messages import LIBRARY, audience_changes, audience_key_of, identify, track
from activation.destinations import Destination, Tracking, Webhook
from activation.sinks import Batch, DeliveryError
from activation.webhook import WebhookSender

WRITE_KEY_VARIABLE = "TRACKING_WRITE_KEY"


class TrackingSender(WebhookSender):
    """A webhook whose body is a tracking-API batch and whose credentials are a write key."""

    def __init__(self, destination: Destination, tracking: Tracking,
                 jitter: Callable[[], float] = random.random) -> None:
        write_key = tracking.write_key or os.environ.get(WRITE_KEY_VARIABLE, "")
        if not write_key:
            raise DeliveryError(f"destination {destination.name}: no write key (tracking.write_key, or "
                                f"${WRITE_KEY_VARIABLE} in the environment)")
        basic = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        webhook = Webhook(url=f"{tracking.url}/v1/batch", batch_size=tracking.batch_size,
                          batch_seconds=tracking.batch_seconds, max_attempts=tracking.max_attempts,
                          backoff_seconds=tracking.backoff_seconds, max_backoff_seconds=tracking.max_backoff_seconds,
                          timeout_seconds=tracking.timeout_seconds, dead_letter=tracking.dead_letter,
                          headers={"Authorization": f"Basic {basic}"})
        super().__init__(destination, webhook, jitter)
        self.audience_key = tracking.audience_key or audience_key_of(destination.segment)

    def payload(self, batch: Batch) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for change in audience_changes(batch):
            messages += [identify(change, self.audience_key), track(change, self.audience_key)]
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"batch": messages, "sentAt": sent_at, "context": {"library": LIBRARY}}
