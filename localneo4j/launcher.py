"""Runs a Neo4j Community server as a local process, assembled from Maven Central.

This machine has no Docker engine, so the project fetches the server's jars with Maven
(`pom.xml` beside this file) and starts `org.neo4j.server.CommunityEntryPoint` itself.
Everything lives below one home folder (default `.neo4j/` in the repository, ignored by
git): `lib/` and `plugins/` (jars, kept between runs so a second start downloads nothing),
`conf/`, `data/`, `logs/`, `run/`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import neo4j
from neo4j.exceptions import AuthError, ServiceUnavailable

from localneo4j.java_process import fetch_jars, find_java, gone, stop_process, tail

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
POM = PACKAGE_DIR / "pom.xml"
CONF_TEMPLATE = PACKAGE_DIR / "neo4j.conf"

DEFAULT_PASSWORD = "identity-local"
DEFAULT_USER = "neo4j"
ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
MIN_JAVA = 17

# The JVM flags Neo4j's own start script passes (server.jvm.additional in its default conf).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-Dlog4j2.disable.jmx=true",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
)


class LaunchError(RuntimeError):
    """Neo4j could not be fetched, started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class LocalNeo4j:
    """One local Neo4j installation and how to reach it."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("NEO4J_HOME_DIR", REPO_DIR / ".neo4j")))
    password: str = field(default_factory=lambda: os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD))
    bolt_port: int = field(default_factory=lambda: int(os.environ.get("NEO4J_BOLT_PORT", "7687")))
    http_port: int = field(default_factory=lambda: int(os.environ.get("NEO4J_HTTP_PORT", "7474")))
    heap: str = field(default_factory=lambda: os.environ.get("NEO4J_HEAP", "3g"))
    pagecache: str = field(default_factory=lambda: os.environ.get("NEO4J_PAGECACHE", "3g"))
    user: str = DEFAULT_USER

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def browser_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/browser/"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "neo4j-local.pid"

    @property
    def console_log(self) -> Path:
        return self.home / "logs" / "console.log"

    # -- fetching -------------------------------------------------------------------

    def fetch(self) -> bool:
        """Copies the server's jars from Maven Central; returns False when the cache was current."""
        return fetch_jars(POM, self.lib, {"neo4j.home": str(self.home.resolve())}, "NEO4J_MAVEN_REPO", "Neo4j",
                          LaunchError)

    # -- configuration ----------------------------------------------------------------

    def write_config(self) -> Path:
        """Writes conf/neo4j.conf from the template in the repository."""
        for sub in ("conf", "data", "logs", "plugins", "run", "import"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        text = CONF_TEMPLATE.read_text().format(
            home=self.home.resolve(),
            bolt_port=self.bolt_port,
            http_port=self.http_port,
            pagecache=self.pagecache,
        )
        target = self.conf_dir / "neo4j.conf"
        target.write_text(text)
        return target

    def _java(self) -> str:
        return find_java(MIN_JAVA, "Neo4j 5.26", LaunchError)

    def _java_env(self) -> dict[str, str]:
        return {**os.environ, "NEO4J_HOME": str(self.home.resolve()), "NEO4J_CONF": str(self.conf_dir.resolve())}

    def _classpath(self) -> str:
        # as Neo4j's own start script does: APOC registers extensions that must be on the classpath
        return f"{self.lib.resolve()}/*:{(self.home / 'plugins').resolve()}/*"

    def set_initial_password(self) -> bool:
        """Sets the password before the first start; returns False when the store already has users."""
        if (self.home / "data" / "dbms" / "auth.ini").exists():
            return False
        if len(self.password) < 8:
            raise LaunchError("NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)")
        cmd = [self._java(), "-cp", self._classpath(), ADMIN_TOOL, "dbms", "set-initial-password", self.password]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self._java_env())
        if done.returncode != 0:
            raise LaunchError("setting Neo4j's initial password failed:\n" + tail(done.stdout + done.stderr, 20))
        return True

    # -- running -------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the server this launcher started, if it is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return None if gone(pid) else pid

    def bolt_answers(self) -> bool:
        """True when something accepts TCP connections on the Bolt port."""
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.bolt_port)) == 0

    def check_credentials(self) -> None:
        """Connects with the configured password; raises LaunchError with the reason otherwise."""
        try:
            # a short timeout: a port held by something that never speaks Bolt must not hang us
            with neo4j.GraphDatabase.driver(self.uri, auth=(self.user, self.password),
                                           connection_timeout=5, connection_acquisition_timeout=5) as driver:
                driver.verify_connectivity()
        except AuthError as exc:
            raise LaunchError(
                f"the Neo4j on {self.uri} rejected user {self.user!r} with the password from NEO4J_PASSWORD "
                f"({exc.message}); set NEO4J_PASSWORD to that server's password, or stop it and remove "
                f"{self.home / 'data'} to start afresh"
            ) from exc

    def start(self, timeout: float = 120.0) -> bool:
        """Starts Neo4j in the background and waits for Bolt; returns False if one was already up."""
        if self.bolt_answers():
            try:
                self.check_credentials()
            except ServiceUnavailable as exc:
                raise LaunchError(f"port {self.bolt_port} is taken by something that is not a Neo4j Bolt server") from exc
            return False
        self._ensure_http_port_free()
        java = self._java()
        self.fetch()
        self.write_config()
        self.set_initial_password()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_FLAGS, "-cp", self._classpath(), ENTRY_POINT,
               f"--home-dir={self.home.resolve()}", f"--config-dir={self.conf_dir.resolve()}", "--console-mode"]
        with open(self.console_log, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self._java_env(), start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        self._wait_for_bolt(proc, timeout)
        return True

    def _ensure_http_port_free(self) -> None:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", self.http_port)) == 0:
                raise LaunchError(f"port {self.http_port} (Neo4j HTTP) is taken by another process; "
                                  "set NEO4J_HTTP_PORT or stop that process")

    def _wait_for_bolt(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(f"Neo4j exited with code {proc.returncode} while starting:\n{self.logtail()}")
            if self.bolt_answers():
                try:
                    self.check_credentials()
                    return
                except ServiceUnavailable:
                    pass  # Bolt is listening but the database is not online yet
            time.sleep(0.5)
        raise LaunchError(f"Neo4j did not answer on {self.uri} within {timeout:.0f} s:\n{self.logtail()}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stops the server this launcher started (SIGTERM, then SIGKILL); False if none ran."""
        return stop_process(self.pid(), self.pid_file, timeout)

    def logtail(self, lines: int = 40) -> str:
        """The last lines of Neo4j's own logs, for error messages."""
        if not self.console_log.exists():
            return "(Neo4j wrote no log)"
        return f"--- last lines of {self.console_log} ---\n" + tail(self.console_log.read_text(errors="replace"), lines)


