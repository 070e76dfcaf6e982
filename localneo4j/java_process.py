"""What the local Neo4j and the local Kafka (localkafka/) share: a server's jars fetched by Maven
into its home's lib/, a detached Java process stopped through its pid file, and the last lines
of its log for error messages."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def fetch_jars(pom: Path, lib: Path, properties: Mapping[str, str], repo_variable: str, what: str,
               error: type[Exception]) -> bool:
    """Copies the jars the pom names into lib with `mvn package`; False when lib was already
    fetched with this pom (a stamp of its SHA-256). `repo_variable`, when set in the environment,
    names a separate local Maven repository (e.g. to measure a cold fetch)."""
    stamp = lib / ".pom-sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(f"Maven (mvn) is not on PATH: it is needed once to fetch {what}'s jars")
    if lib.exists():
        shutil.rmtree(lib)  # a changed pom must not leave old versions on the classpath
    cmd = [mvn, "-q", "-B", "-f", str(pom), *(f"-D{key}={value}" for key, value in properties.items()), "package"]
    if os.environ.get(repo_variable):
        cmd.insert(1, f"-Dmaven.repo.local={os.environ[repo_variable]}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise error(f"downloading {what} with Maven failed:\n" + tail(done.stdout + done.stderr, 30))
    stamp.write_text(digest + "\n")
    return True


def find_java(least: int, needs: str, error: type[Exception]) -> str:
    """JAVA_HOME's java, else the one on PATH, if it is at least version `least`; `needs` names
    who needs it in the error ("Neo4j 5.26")."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise error(f"Java is missing: {needs} needs Java {least} or newer on PATH or in JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < least:
        said = out.splitlines()[0] if out else "?"
        raise error(f"{needs} needs Java {least} or newer; {java} says: {said}")
    return java


def stop_process(pid: int | None, pid_file: Path, timeout: float) -> bool:
    """SIGTERM (the server's shutdown hook shuts it down cleanly), then SIGKILL after timeout;
    False when no process was running."""
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def gone(pid: int) -> bool:
    """True once the process has exited; reaps it when this process started it (no zombie)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # started by another process (make, an earlier shell): only its existence tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
