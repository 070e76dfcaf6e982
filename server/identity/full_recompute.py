"""Full recomputation of profiles as connected components, to verify or repair the incremental ones.

Incremental stitching keeps profiles current one batch at a time. This recomputes the
components from scratch in Cypher (min-id propagation over accepted links, in batches),
compares them with the stored profiles, and can repair what disagrees: split a profile
that spans components, merge profiles that share one, give an orphan identifier a profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from server.graph import Graph, Tx
from server.identity import consent
from server.identity.values import Identifier
from server.identity.link_commit import refresh_summaries, split_profile
from server.identity.identity_config import IdentityRules
from server.identity.stitching import new_profile_id

MAX_ROUNDS = 1000
MISMATCH_LIMIT = 10_000


@dataclass
class Mismatch:
    problem: str  # "split", "merge" or "orphan"
    subject: list[str]


@dataclass
class Report:
    rounds: int = 0
    identifiers: int = 0
    components: int = 0
    profiles: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    repaired: int = 0

    @property
    def agrees(self) -> bool:
        return not self.mismatches


def recompute(graph: Graph, scope: str = "") -> Report:
    """Recomputes the components and lists where profiles disagree with them."""
    report = Report()
    graph.run_batched("components/reset")
    while True:
        report.rounds += 1
        (record,) = graph.run_batched("components/propagate")
        if record["changed"] == 0 or report.rounds >= MAX_ROUNDS:
            break
    (counts,) = graph.read("components/counts")
    report.identifiers, report.components, report.profiles = counts["identifiers"], counts["components"], counts["profiles"]
    report.mismatches = [Mismatch(r["problem"], list(r["subject"]))
                         for r in graph.read("components/mismatches", scope=scope, limit=MISMATCH_LIMIT)]
    return report


def repair(graph: Graph, rules: IdentityRules, report: Report) -> int:
    """Fixes each mismatch in its own transaction; returns how many were fixed."""
    fixed = 0
    for mismatch in report.mismatches:
        graph.transaction("repair", partial(_repair, rules=rules, mismatch=mismatch))
        fixed += 1
    report.repaired = fixed
    return fixed


def _repair(tx: Tx, rules: IdentityRules, mismatch: Mismatch) -> None:
    now = datetime.now(UTC)
    if mismatch.problem == "split":
        split_profile(tx, rules, mismatch.subject[0], "recomputed components disagreed", now, "recompute")
    elif mismatch.problem == "merge":
        survivor, *absorbed = mismatch.subject
        consent.refresh(tx, sorted(mismatch.subject))  # each side's own state, before the merge
        tx.run("components/merge_profiles", survivor=survivor, absorbed=absorbed, now=now)
    elif mismatch.problem == "orphan":
        identifier = Identifier(*mismatch.subject)
        profile_id = new_profile_id()
        tx.run("profiles/create", profile_ids=[profile_id], now=now)
        tx.run("profiles/assign", rows=[{"type": identifier.type, "value": identifier.value, "profile_id": profile_id}])
        # its golden record and counts, and a mark for segments and consent, as ingest gives a profile
        refresh_summaries(tx, rules, [profile_id], now, "recompute")
