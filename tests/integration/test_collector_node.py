"""The collector and the stock Segment Node SDK (@segment/analytics-node, which posts plain
JSON with the write key both as Basic auth and in the body), run by Node unchanged.
`make node-sdks` installs it from tests/integration/node/package-lock.json."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from identity.v1 import identity_service_pb2_grpc
from neo4j import Driver

from server.api.app import RunningServer
from tests.integration.test_collector import check_every_call, url

NODE_DIR = Path(__file__).parent / "node"


def test_segments_node_sdk_sends_every_call_type_unchanged(
        grpc_server: RunningServer, driver: Driver, identity: identity_service_pb2_grpc.IdentityServiceStub,
        uid: str) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").is_dir():
        pytest.fail("Node.js and @segment/analytics-node are needed: run `make node-sdks`")
    done = subprocess.run([node, str(NODE_DIR / "send.js"), url(grpc_server), uid], capture_output=True, text=True,
                          timeout=120, cwd=NODE_DIR)
    assert done.returncode == 0, done.stderr
    check_every_call(driver, identity, uid, "@segment/analytics-node")
