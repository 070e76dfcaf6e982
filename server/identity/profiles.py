"""Profiles as operators and lookups see them: lookups, identity graphs, forgetting, unlinking.

A profile is a connected component of accepted links, kept current by link_commit (which
also splits a profile whose links no longer hold it together).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from server.errors import InvalidArgument, NotFound
from server.graph import Graph, Tx, to_datetime
from server.identity.consent import ConsentState, from_properties, with_defaults
from server.identity.golden import from_json
from server.identity.values import (
    Forgotten,
    GoldenTraitView,
    GraphIdentifier,
    GraphLink,
    HeldIdentifier,
    Identifier,
    IdentityGraphView,
    InvalidValue,
    KeptInvalid,
    LookupMiss,
    ProfileKey,
    ProfileView,
)
from server.identity.normalize import normalize_identifier
from server.identity.identity_config import IdentityRules
from server.identity import link_commit
from server.identity.stitching import suppression_hash


ACCEPTED_KINDS = frozenset({"linked", "probabilistic", "confirmed"})


# -- reads and operator actions -------------------------------------------------------------

class Profiles:
    """Lookups, identity graphs, forgetting and unlinking, over the graph layer."""

    def __init__(self, graph: Graph, rules: IdentityRules, suppression_salt: str) -> None:
        self.graph = graph
        self.rules = rules
        self.salt = suppression_salt

    def normalize_key(self, key: ProfileKey) -> ProfileKey:
        if isinstance(key, Identifier):
            return normalize_identifier(self.rules, key.type, key.value)
        if not key.strip():
            raise InvalidArgument("the profile reference is empty: give an identifier or a profile id")
        return key.strip()

    def lookup(self, keys: Sequence[ProfileKey | InvalidArgument]) -> list[ProfileView | LookupMiss]:
        """One answer per key, in order; a key that was invalid already is passed as its error."""
        refs = [_ref_row(k) if not isinstance(k, InvalidArgument) else {} for k in keys]
        answers: list[ProfileView | LookupMiss] = [LookupMiss("")] * len(keys)
        for record in self.graph.read_once("profiles/lookup", refs=refs):
            n = record["n"]
            key = keys[n]
            answers[n] = (_profile_view(record, self._consent(record["consent"])) if record["profile_id"]
                          else LookupMiss(_miss_reason(key, record)))
        return answers

    def _consent(self, held: list[list[Any]]) -> tuple[ConsentState, ...]:
        if not held:  # most profiles never stated consent: every category at its default
            return self._default_consent
        return tuple(with_defaults(from_properties(dict(held)), self.rules.consent))

    @functools.cached_property
    def _default_consent(self) -> tuple[ConsentState, ...]:
        return tuple(with_defaults({}, self.rules.consent))

    def resolve(self, key: ProfileKey) -> str:
        """The current profile id for a key; NotFound says why there is none."""
        (answer,) = self.lookup([self.normalize_key(key)])
        if isinstance(answer, LookupMiss):
            raise NotFound(answer.reason)
        return answer.profile_id

    def identity_graph(self, key: ProfileKey) -> IdentityGraphView:
        profile_id = self.resolve(key)
        records = self.graph.read("profiles/graph", profile_id=profile_id)
        if not records:
            raise NotFound(f"profile {profile_id} changed while it was read; ask again")
        record = records[0]
        identifiers = tuple(
            GraphIdentifier(Identifier(i["type"], i["value"]), i["member"],
                            (f"{i['flag']}: {i['flag_reason']}",) if i["flag"] else ())
            for i in record["identifiers"])
        links = tuple(
            GraphLink(Identifier(e["a_type"], e["a_value"]), Identifier(e["b_type"], e["b_value"]),
                      e["kind"] in ACCEPTED_KINDS, e["reason"] or ("seen together" if e["kind"] == "linked" else ""),
                      int(e["times_seen"] or 0), to_datetime(e["first_seen"]), to_datetime(e["last_seen"]),
                      tuple(e["event_ids"] or ()), kind=e["kind"], probability=e["probability"],
                      model_version=e["model_version"] or "",
                      fields=tuple((f["field"], f["level"], float(f["weight"])) for f in json.loads(e["fields"] or "[]")))
            for e in record["edges"])
        invalid = tuple(KeptInvalid(InvalidValue(**{k: v for k, v in json.loads(text).items() if k != "replayable"}),
                                    t["event_id"], to_datetime(t["occurred_at"]))
                        for t in record["invalid"] for text in t["invalid"] or ())
        return IdentityGraphView(profile_id, identifiers, links, invalid, self._consent(record["consent"]))

    def forget(self, key: ProfileKey) -> Forgotten:
        """Erases the person everywhere (graph, quarantine, audit entries naming them in clear);
        later events with any of their identifiers are refused."""
        profile_id = self.resolve(key)

        def work(tx: Tx) -> Forgotten:
            held = [Identifier(r["type"], r["value"]) for r in tx.run("profiles/identifiers_of", profile_id=profile_id)]
            hashes = [suppression_hash(self.salt, i) for i in held]
            records = tx.run("profiles/forget", profile_id=profile_id, hashes=hashes, now=datetime.now(UTC))
            if not records:
                raise NotFound(f"profile {profile_id} is no longer active")
            # every copy: audit entries that name one of them in clear keep only its hash
            tx.run("audit/scrub", replacements=[{"value": i.value, "marker": f"#{h}"} for i, h in zip(held, hashes)])
            return Forgotten(profile_id, records[0]["identifiers"], records[0]["touchpoints"])

        return self.graph.transaction("forget", work)

    def unlink(self, identifier: Identifier, other: Identifier | None, reason: str) -> list[str]:
        """Removes the identifier's links (or the one to other); returns the profiles it split into."""
        identifier = normalize_identifier(self.rules, identifier.type, identifier.value)
        other = normalize_identifier(self.rules, other.type, other.value) if other else None
        now = datetime.now(UTC)

        def work(tx: Tx) -> list[str]:
            return link_commit.unlink(tx, self.rules, identifier, other, reason, now)

        return self.graph.transaction("unlink", work)


def _ref_row(key: ProfileKey) -> dict[str, str | None]:
    if isinstance(key, Identifier):
        return {"type": key.type, "value": key.value, "profile_id": None}
    return {"type": None, "value": None, "profile_id": key}


def _miss_reason(key: ProfileKey | InvalidArgument, record: Mapping[str, object]) -> str:
    if isinstance(key, InvalidArgument):
        return f"invalid reference: {key}"
    if isinstance(key, Identifier):
        return f"no profile holds {key}"
    if record["forgotten"]:
        return f"profile {key} was forgotten"
    return f"no profile has the id {key}"


def _profile_view(record: Mapping[str, Any], consent: tuple[ConsentState, ...]) -> ProfileView:
    golden = from_json(record["golden"])
    return ProfileView(
        profile_id=str(record["profile_id"]),
        identifiers=tuple(sorted(
            (HeldIdentifier(Identifier(i["type"], i["value"]), to_datetime(i["first_seen"]), to_datetime(i["last_seen"]))
             for i in record["identifiers"]),
            key=lambda h: h.identifier)),
        merged_profile_ids=tuple(sorted(record["merged_profile_ids"])),
        traits=tuple(GoldenTraitView(k, o.value, o.source, o.observed_at) for k, o in sorted(golden.items())),
        touchpoints_by_channel={"online": int(record["touchpoints_online"]),
                                "offline": int(record["touchpoints_offline"])},
        first_seen=to_datetime(record["first_seen"]),
        last_seen=to_datetime(record["last_seen"]),
        segments=tuple(sorted(record["segments"])),
        consent=consent,
    )
