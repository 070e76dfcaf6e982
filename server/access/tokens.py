"""Bearer tokens: who a caller is, and what they may do.

Tokens are configured as SHA-256 hashes in a YAML file (`--auth-tokens`), never in clear: a
copy of the file, a backup or a log line gives nobody a credential. A token is 32 random
bytes, so a plain (unsalted, fast) hash is enough: there is nothing to guess. Each token has
a name (who, in the audit trail), scopes (what it may call), and optionally the sources it
may write as, so that the web collector's token cannot pose as the CRM export.

Left out on purpose: signed JWTs. They would save the file but need a key distribution and a
revocation story of their own; opaque tokens revoke by deleting a line and restarting.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from server.errors import ConfigurationError

INGEST, READ, ADMIN = "ingest", "read", "admin"
SCOPES = (INGEST, READ, ADMIN)
BEARER = "bearer "
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the token's name, its scopes, and the sources it may write as
    (None: any source)."""

    name: str
    scopes: frozenset[str]
    sources: frozenset[str] | None = None

    def may_write_as(self, source: str) -> bool:
        return self.sources is None or source in self.sources


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRegistry:
    """The configured tokens, by hash."""

    def __init__(self, callers_by_hash: Mapping[str, Caller]) -> None:
        self._by_hash = dict(callers_by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller an `authorization: Bearer <token>` value names, or None for a missing,
        malformed or unknown token."""
        if not authorization or not authorization[:len(BEARER)].lower() == BEARER:
            return None
        # looked up by the token's hash: how long the lookup takes says nothing of the token
        return self._by_hash.get(token_hash(authorization[len(BEARER):].strip()))


def load_tokens(path: Path) -> TokenRegistry:
    """Reads and validates the tokens file; a mistake stops the start with its place named."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"--auth-tokens {path}: cannot read it: {exc}") from exc
    entries = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"--auth-tokens {path}: expected a non-empty list under 'tokens'")
    by_hash: dict[str, Caller] = {}
    names: set[str] = set()
    for n, entry in enumerate(entries):
        digest, caller = _entry(entry, f"{path}: tokens[{n}]")
        if caller.name in names:
            raise ConfigurationError(f"{path}: tokens[{n}]: the name {caller.name!r} is used twice")
        if digest in by_hash:
            raise ConfigurationError(f"{path}: tokens[{n}]: the same token as {by_hash[digest].name!r}")
        names.add(caller.name)
        by_hash[digest] = caller
    return TokenRegistry(by_hash)


def _entry(entry: Any, where: str) -> tuple[str, Caller]:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: expected a mapping with name, sha256 and scopes")
    unknown = set(entry) - {"name", "sha256", "scopes", "sources"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    name, digest = str(entry.get("name", "")), str(entry.get("sha256", "")).lower()
    if not _NAME.match(name):
        raise ConfigurationError(f"{where}: name must be 1 to 100 of A-Z a-z 0-9 _ . -")
    if not _HEX64.match(digest):
        raise ConfigurationError(f"{where} ({name}): sha256 must be the 64 hex digits of the token's SHA-256 "
                                 "(`identity token create` prints it); the token itself never goes in this file")
    scopes = _names(entry.get("scopes"), f"{where} ({name}): scopes")
    if not scopes or not scopes <= set(SCOPES):
        raise ConfigurationError(f"{where} ({name}): scopes must be a non-empty list of {', '.join(SCOPES)}")
    sources = _names(entry["sources"], f"{where} ({name}): sources") if "sources" in entry else None
    return digest, Caller(name, frozenset(scopes), frozenset(sources) if sources is not None else None)


def _names(value: Any, where: str) -> set[str]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where} must be a list of strings")
    return set(value)
