"""The collector's promise under a crash: the server is killed with SIGKILL while the stock
Segment SDK sends; after a restart and the SDK's own retries, every message the SDK counted
as sent is stored exactly once (a 200 went out only after the commit; a retry of a batch the
server had committed but not answered finds its messages as duplicates)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from neo4j import Driver
from segment.analytics.client import Client as SegmentClient

from server.graph import Neo4jSettings
from tests.integration.test_server_process import free_port, server_env, start_server, wait_serving

MESSAGES = 600


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


def started(neo4j_settings: Neo4jSettings, ports: tuple[int, int]) -> Any:
    grpc_port, collect_port = ports
    proc = start_server(server_env(neo4j_settings), grpc_port, "--collect-listen", f"127.0.0.1:{collect_port}",
                        "--http-listen", "off")
    wait_serving(grpc_port).close()
    return proc


@pytest.fixture
def killed_and_restarted(neo4j_settings: Neo4jSettings, ports: tuple[int, int]) -> Iterator[list[Any]]:
    procs: list[Any] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def stored(driver: Driver, prefix: str) -> dict[str, int]:
    records = driver.execute_query("MATCH (t:Touchpoint) WHERE t.event_id STARTS WITH $prefix "
                                   "RETURN t.event_id AS id, count(*) AS copies", prefix=prefix).records
    return {r["id"]: r["copies"] for r in records}


def test_every_message_the_sdk_counted_as_sent_is_stored_once_after_a_sigkill(
        neo4j_settings: Neo4jSettings, driver: Driver, ports: tuple[int, int], killed_and_restarted: list[Any],
        uid: str) -> None:
    procs = killed_and_restarted
    procs.append(started(neo4j_settings, ports))
    failed: list[str] = []
    client = SegmentClient(write_key="any", host=f"http://127.0.0.1:{ports[1]}", upload_size=25, max_retries=10,
                           on_error=lambda error, batch: failed.extend(m["messageId"] for m in batch))
    sent_all = threading.Event()

    def send() -> None:
        for n in range(MESSAGES):
            client.track(user_id=f"{uid}-u{n % 40}", event="Product Viewed", properties={"n": n},
                         message_id=f"{uid}-{n}")
            time.sleep(0.005)
        sent_all.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while len(stored(driver, f"{uid}-")) < 25:  # the SDK has sent some batches, and has more on the way
        assert time.monotonic() < deadline, "the SDK sent nothing"
        time.sleep(0.05)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait(timeout=30)
    before_restart = len(stored(driver, f"{uid}-"))
    procs.append(started(neo4j_settings, ports))
    assert sent_all.wait(timeout=120)
    client.flush()
    client.shutdown()
    kept = stored(driver, f"{uid}-")
    counted_as_sent = {f"{uid}-{n}" for n in range(MESSAGES)} - set(failed)
    assert 0 < before_restart < MESSAGES  # the kill fell in the middle of the sending
    assert counted_as_sent <= set(kept), f"{len(counted_as_sent - set(kept))} sent messages were lost"
    assert all(copies == 1 for copies in kept.values())
    assert len(failed) == 0  # the SDK's retries carried every batch over the restart
