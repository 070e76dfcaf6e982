"""The delivery runner's Prometheus metrics, served by `identity deliver --metrics-listen`.

One registry for the runner's process (a runner is one process with a thread per
destination). Counters only grow: tests and dashboards read their increase.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class DeliveryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.changes = Counter("identity_delivery_changes", "Segment changes delivered, by destination",
                               ["destination"], registry=self.registry)
        self.batches = Counter("identity_delivery_batches", "Batches ended, by destination and outcome "
                               "(delivered, dead_lettered)", ["destination", "outcome"], registry=self.registry)
        self.retries = Counter("identity_delivery_retries", "Failed attempts that were retried, by destination",
                               ["destination"], registry=self.registry)
        self.dead_letters = Counter("identity_delivery_dead_letters", "Batches written to the dead-letter file, "
                                    "by destination", ["destination"], registry=self.registry)
        self.withheld = Counter("identity_delivery_withheld", "ENTERs not delivered because the profile no longer "
                                "granted the destination's required consent, by destination", ["destination"],
                                registry=self.registry)
        self.position = Gauge("identity_delivery_position", "The last position saved, by destination",
                              ["destination"], registry=self.registry)

    def serve(self, listen: str) -> None:
        """Serves /metrics on host:port from a daemon thread."""
        host, port = listen.rsplit(":", 1)
        start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)


DELIVERY = DeliveryMetrics()
