"""Runs a one-node Apache Kafka (KRaft: broker and controller in one process), assembled from Maven Central.

This machine has no Docker engine, so the project fetches the broker's jars with Maven
(`pom.xml` beside this file) and starts `kafka.Kafka` itself, as it does for Neo4j.
Everything lives below one home folder (default `.kafka/` in the repository, ignored by
git): `lib/` (jars, kept between runs so a second start downloads nothing), `config/`,
`data/` (the log dirs and the KRaft metadata log), `logs/`, `run/`. One home, one broker.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from localneo4j.java_process import fetch_jars, find_java, gone, stop_process, tail

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
POM = PACKAGE_DIR / "pom.xml"

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1
MIN_JAVA = 17

# The JVM flags Kafka's own kafka-run-class.sh passes (KAFKA_JVM_PERFORMANCE_OPTS).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

# Kafka's pom names no slf4j binding; pom.xml adds log4j2's, and this sends it to stdout
# (console.log) at INFO, as the distribution's log4j2.yaml does, minus the per-request noise.
LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class LaunchError(RuntimeError):
    """Kafka could not be fetched, started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class LocalKafka:
    """One local Kafka installation and how to reach it; pass ports (or set the env) to run beside another."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("KAFKA_HOME_DIR", REPO_DIR / ".kafka")))
    port: int = field(default_factory=lambda: int(os.environ.get("KAFKA_PORT", "9092")))
    controller_port: int = field(default_factory=lambda: int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")))
    heap: str = field(default_factory=lambda: os.environ.get("KAFKA_HEAP", "512m"))

    @classmethod
    def on_free_ports(cls, home: Path) -> LocalKafka:
        """A broker in `home` on two ports the kernel reports free, for tests that must not meet another Kafka."""
        return cls(home=home, port=_free_port(), controller_port=_free_port())

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "kafka-local.pid"

    @property
    def console_log(self) -> Path:
        return self.home / "logs" / "console.log"

    # -- fetching -------------------------------------------------------------------

    def fetch(self) -> bool:
        """Copies the broker's jars from Maven Central; returns False when the cache was current."""
        return fetch_jars(POM, self.lib, {"kafka.home": str(self.home.resolve())}, "KAFKA_MAVEN_REPO", "Kafka",
                          LaunchError)

    # -- configuration ----------------------------------------------------------------

    def write_config(self) -> Path:
        """Writes config/server.properties for this home's ports, and log4j2.properties; returns the former."""
        for sub in ("config", "data", "logs", "run"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        (self.config_dir / "log4j2.properties").write_text(LOG4J2)
        # A static voter set (controller.quorum.voters) rather than Kafka 4's dynamic quorum
        # (controller.quorum.bootstrap.servers + format --standalone): the dynamic one records the
        # controller's address in the metadata log, so a restart on another port would find no quorum.
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir.resolve()),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # convenience for local runs; tests create their topics explicitly anyway
            "auto.create.topics.enable": "true",
        }
        target = self.config_dir / "server.properties"
        target.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return target

    def _java(self) -> str:
        return find_java(MIN_JAVA, "the Kafka 4 broker", LaunchError)

    def _classpath_args(self) -> list[str]:
        """The logging set-up and classpath that the broker and StorageTool share."""
        log4j = (self.config_dir / "log4j2.properties").resolve()
        return [f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={(self.home / 'logs').resolve()}",
                "-cp", f"{self.lib.resolve()}/*"]

    def format_storage(self, java: str) -> bool:
        """Formats log.dirs for KRaft with a new cluster id, once; returns False when already formatted.

        A KRaft node refuses to start on an unformatted directory: StorageTool writes
        meta.properties and the bootstrap metadata (the feature levels) there first.
        """
        if (self.data_dir / "meta.properties").exists():
            return False
        config = self.config_dir / "server.properties"
        cmd = [java, *self._classpath_args(), STORAGE_TOOL, "format", "--ignore-formatted",
               "-t", _new_cluster_id(), "-c", str(config.resolve())]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise LaunchError(f"formatting Kafka's storage in {self.data_dir} failed:\n" + tail(done.stdout + done.stderr, 20))
        return True

    # -- running -------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the broker this launcher started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return None if gone(pid) else pid

    def port_answers(self, port: int | None = None) -> bool:
        """True when something accepts TCP connections on the port (default: the broker's)."""
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port if port is None else port)) == 0

    def broker_ready(self, timeout: float = 5.0) -> bool:
        """True when a metadata request lists this node as a broker: the quorum has elected the
        controller and the broker is registered and unfenced, so topics can be created."""
        if not self.port_answers():
            return False  # spares librdkafka's retries against a closed port
        # log_level 0: librdkafka's own connect errors would otherwise go to stderr while the broker starts
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, "socket.timeout.ms": int(timeout * 1000)})
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return NODE_ID in metadata.brokers

    def start(self, timeout: float = 90.0) -> bool:
        """Starts Kafka in the background and waits until it is ready; returns False if one was already up."""
        if self.pid() is not None:  # ours, running or still starting (e.g. a concurrent start)
            self._wait_until_ready(None, timeout)
            return False
        if self.port_answers():
            if self.broker_ready():
                return False  # a Kafka this launcher did not start (another home, a shell): reused
            raise LaunchError(f"port {self.port} is taken by something that does not answer as a Kafka broker; "
                              "set KAFKA_PORT or stop that process")
        if self.port_answers(self.controller_port):
            raise LaunchError(f"port {self.controller_port} (Kafka controller) is taken by another process; "
                              "set KAFKA_CONTROLLER_PORT or stop that process")
        java = self._java()
        self.fetch()
        config = self.write_config()
        self.format_storage(java)
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_FLAGS, *self._classpath_args(),
               BROKER_MAIN, str(config.resolve())]
        with open(self.console_log, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        self._wait_until_ready(proc, timeout)
        return True

    def _wait_until_ready(self, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LaunchError(f"Kafka exited with code {proc.returncode} while starting:\n{self.logtail()}")
            if proc is None and self.pid() is None:
                raise LaunchError(f"the Kafka being started in {self.home} exited:\n{self.logtail()}")
            if self.broker_ready(timeout=2.0):
                return
            time.sleep(0.5)
        raise LaunchError(f"Kafka did not answer on {self.bootstrap} within {timeout:.0f} s:\n{self.logtail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stops the broker this launcher started (SIGTERM, then SIGKILL); False if none ran."""
        return stop_process(self.pid(), self.pid_file, timeout)

    def logtail(self, lines: int = 40) -> str:
        """The last lines of the broker's console log, for error messages."""
        if not self.console_log.exists():
            return "(Kafka wrote no log)"
        return f"--- last lines of {self.console_log} ---\n" + tail(self.console_log.read_text(errors="replace"), lines)


def _new_cluster_id() -> str:
    """A cluster id as Kafka's Uuid.randomUuid makes one: 16 random bytes, URL-safe base64 without
    padding, never starting with '-' (which command lines would take for an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


