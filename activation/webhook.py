"""The webhook sink: a batch is one JSON POST, retried under one Idempotency-Key, then dead-lettered.

A 2xx answer delivers the batch. 408, 429, 5xx, refused connections and timeouts are retried
with capped exponential backoff and jitter (a Retry-After in seconds is honoured); other
answers, and the last failed attempt, append the batch to the dead-letter file with the error.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from activation.ad_audiences import AUDIENCE_FORMATS, audience_records
from activation.backoff import backoff_delay
from activation.destinations import Destination, Webhook
from activation.durable import append_durably
from activation.delivery_metrics import DELIVERY
from activation.sinks import Batch, Outcome

log = logging.getLogger(__name__)

RETRYABLE_HTTP = frozenset({408, 429})
USER_AGENT = "identity-delivery/1"


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
        """Tries until delivered, refused, or out of attempts; a stop waits for the attempt in flight."""
        body = json.dumps(self.payload(batch), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"User-Agent": USER_AGENT, **self.webhook.headers, "Content-Type": "application/json",
                   "Idempotency-Key": batch.idempotency_key}
        attempts, attempt = self.webhook.max_attempts, 1
        while (failure := self._post(body, headers)) is not None:
            if not failure.retryable or attempt == attempts:
                self._dead_letter(batch, attempt, failure.error)
                return Outcome.DEAD_LETTERED
            delay = backoff_delay(attempt, self.webhook.backoff_seconds, self.webhook.max_backoff_seconds,
                                  retry_after=failure.retry_after, jitter=self._jitter)
            DELIVERY.retries.labels(self.destination.name).inc()
            log.warning("destination %s: batch %s, attempt %d of %d failed (%s); next in %.2f s",
                        self.destination.name, batch.idempotency_key, attempt, attempts, failure.error, delay)
            if stop.wait(delay):
                return Outcome.ABANDONED
            attempt += 1
        log.debug("destination %s: delivered %s", self.destination.name, batch.idempotency_key)
        return Outcome.DELIVERED

    def payload(self, batch: Batch) -> dict[str, Any]:
        """Our changes, or the batch as one ad platform's operations (activation/ad_audiences.py)."""
        if self.webhook.format in AUDIENCE_FORMATS:
            return {"destination": batch.destination, "segment": batch.segment, "format": self.webhook.format,
                    "operations": audience_records(batch, self.webhook.format)}
        return batch.payload()

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

    def _dead_letter(self, batch: Batch, attempts: int, error: str) -> None:
        record = {
            "destination": batch.destination, "segment": batch.segment, "idempotency_key": batch.idempotency_key,
            "first_position": batch.first_position, "last_position": batch.last_position, "attempts": attempts,
            "error": error, "dead_lettered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "url": self.webhook.url, "payload": self.payload(batch),
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
