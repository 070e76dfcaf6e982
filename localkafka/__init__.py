"""Where the service and the tests find Kafka, and the launcher for a local one.

Two ways, in this order, the same for `make kafka` and the tests:
1. `KAFKA_BOOTSTRAP` (bootstrap.servers, e.g. `host1:9092,host2:9092`): an existing cluster.
2. Otherwise a one-node KRaft broker assembled from Maven Central (see `launcher.py`).
"""

from localkafka.launcher import LaunchError, LocalKafka
from localkafka.target import KafkaTarget, kafka_target

__all__ = ["KafkaTarget", "LaunchError", "LocalKafka", "kafka_target"]
