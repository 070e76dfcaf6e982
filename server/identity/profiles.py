"""Profiles: connected components of accepted links, kept current as links come and go.

A profile splits when its links no longer hold it together: an operator unlinks an
identifier, or an identifier is flagged as shared and its links stop counting. The part
with the most identifiers keeps the profile id; every other part gets a new profile that
records where it came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from server.errors import InvalidArgument, NotFound
from server.graph import Graph, Tx, to_datetime
from server.identity.golden import GoldenRecord, TraitObservation, from_json, observe
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
from server.identity.stitching import ProfileState, new_profile_id, summary_row, suppression_hash


def components(members: Mapping[Identifier, Iterable[Identifier]]) -> list[set[Identifier]]:
    """Connected components of the members over their links (links to non-members ignored)."""
    parent = {m: m for m in members}

    def find(x: Identifier) -> Identifier:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for member, linked in members.items():
        for other in linked:
            if other in parent:
                parent[find(member)] = find(other)
    groups: dict[Identifier, set[Identifier]] = {}
    for member in members:
        groups.setdefault(find(member), set()).add(member)
    return list(groups.values())


def split_profile(tx: Tx, rules: IdentityRules, profile_id: str, reason: str, now: datetime,
                  cause: str = "unlink") -> list[str]:
    """Splits a profile into its components; returns the ids of all parts, the kept one first."""
    records = tx.run("profiles/component_of", profile_id=profile_id)
    members = {Identifier(r["type"], r["value"]): [Identifier(n["type"], n["value"]) for n in r["links"]]
               for r in records}
    parts = components(members)
    if len(parts) <= 1:
        return [profile_id]
    parts.sort(key=lambda part: (-len(part), min((rules.rank(i.type), i.value) for i in part)))
    new_ids = [new_profile_id() for _ in parts[1:]]
    tx.run("profiles/create", profile_ids=new_ids, now=now)
    moves = [{"type": i.type, "value": i.value, "profile_id": pid}
             for pid, part in zip(new_ids, parts[1:]) for i in sorted(part)]
    tx.run("profiles/assign", rows=moves)
    tx.run("profiles/record_split", rows=[{"profile_id": pid, "original": profile_id} for pid in new_ids],
           reason=reason, now=now)
    refresh_summaries(tx, rules, [profile_id, *new_ids], cause)
    return [profile_id, *new_ids]


def refresh_summaries(tx: Tx, rules: IdentityRules, profile_ids: list[str], cause: str = "unlink") -> None:
    """Recomputes golden records, seen range and counts of profiles from their touchpoints."""
    rows = []
    for record in tx.run("profiles/summarize", profile_ids=profile_ids):
        golden: GoldenRecord = {}
        for seen in record["observations"]:
            at = to_datetime(seen["occurred_at"])
            assert at is not None
            rank = rules.source_rank(seen["source"])
            observe(golden, (TraitObservation(k, v, seen["source"], at, rank)
                             for k, v in json.loads(seen["traits"]).items()))
        state = ProfileState(
            profile_id=record["profile_id"],
            golden=golden,
            first_seen=to_datetime(record["first_seen"]),
            last_seen=to_datetime(record["last_seen"]),
            touchpoints={"online": record["online"], "offline": record["offline"]},
        )
        rows.append(summary_row(state))
    tx.run("profiles/update_summary", cause=cause, rows=rows)


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
            answers[n] = _profile_view(record) if record["profile_id"] else LookupMiss(_miss_reason(key, record))
        return answers

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
        return IdentityGraphView(profile_id, identifiers, links, invalid)

    def forget(self, key: ProfileKey) -> Forgotten:
        """Erases the person; later events with any of their identifiers are refused."""
        profile_id = self.resolve(key)

        def work(tx: Tx) -> Forgotten:
            held = [Identifier(r["type"], r["value"]) for r in tx.run("profiles/identifiers_of", profile_id=profile_id)]
            hashes = [suppression_hash(self.salt, i) for i in held]
            records = tx.run("profiles/forget", profile_id=profile_id, hashes=hashes, now=datetime.now(UTC))
            if not records:
                raise NotFound(f"profile {profile_id} is no longer active")
            return Forgotten(profile_id, records[0]["identifiers"], records[0]["touchpoints"])

        return self.graph.transaction("forget", work)

    def unlink(self, identifier: Identifier, other: Identifier | None, reason: str) -> list[str]:
        """Removes the identifier's links (or the one to other); returns the profiles it split into."""
        identifier = normalize_identifier(self.rules, identifier.type, identifier.value)
        other = normalize_identifier(self.rules, other.type, other.value) if other else None
        now = datetime.now(UTC)

        def work(tx: Tx) -> list[str]:
            records = tx.run("profiles/unlink", type=identifier.type, value=identifier.value,
                             other_type=other.type if other else None, other_value=other.value if other else None,
                             reason=reason or "no reason given", now=now)
            if not records:
                raise NotFound(f"no profile holds {identifier}")
            if other is not None and records[0]["unlinked"] == 0:
                raise NotFound(f"{identifier} and {other} are not linked")
            return split_profile(tx, self.rules, records[0]["profile_id"], f"unlinked {identifier}", now)

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


def _profile_view(record: Mapping[str, object]) -> ProfileView:
    golden = from_json(record["golden"])  # type: ignore[arg-type]
    return ProfileView(
        profile_id=str(record["profile_id"]),
        identifiers=tuple(sorted(
            (HeldIdentifier(Identifier(i["type"], i["value"]), to_datetime(i["first_seen"]), to_datetime(i["last_seen"]))
             for i in record["identifiers"]),  # type: ignore[attr-defined]
            key=lambda h: h.identifier)),
        merged_profile_ids=tuple(sorted(record["merged_profile_ids"])),  # type: ignore[call-overload]
        traits=tuple(GoldenTraitView(k, o.value, o.source, o.observed_at) for k, o in sorted(golden.items())),
        touchpoints_by_channel={"online": int(record["touchpoints_online"]),  # type: ignore[call-overload]
                                "offline": int(record["touchpoints_offline"])},  # type: ignore[call-overload]
        first_seen=to_datetime(record["first_seen"]),
        last_seen=to_datetime(record["last_seen"]),
        segments=tuple(sorted(record["segments"])),  # type: ignore[call-overload]
    )
