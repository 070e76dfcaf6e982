"""A reviewer's decisions on possible matches: confirmed, a pair links like identifiers seen
together (through merge protection); rejected, it never links, and the model stops proposing it."""

from __future__ import annotations

from datetime import UTC, datetime

from server.errors import FailedPrecondition, InvalidArgument
from server.graph import Graph, Tx
from server.identity.identity_config import IdentityRules
from server.identity.link_commit import LinkCommit, commit_links, pair_row, plan_commit, unlink
from server.identity.normalize import normalize_identifier
from server.identity.stitching import ProposedLink
from server.identity.values import Identifier


class Reviews:
    """A reviewer's decisions on possible matches; they then act like deterministic ones."""

    def __init__(self, graph: Graph, rules: IdentityRules) -> None:
        self.graph = graph
        self.rules = rules

    def decide(self, a: Identifier, b: Identifier, confirm: bool, reason: str) -> list[str]:
        """Confirms (links, through merge protection) or rejects (never links) the pair;
        returns the profile ids of the two identifiers after the decision."""
        a = normalize_identifier(self.rules, a.type, a.value)
        b = normalize_identifier(self.rules, b.type, b.value)
        if a == b:
            raise InvalidArgument("a and b are the same identifier")
        reason = reason.strip() or ("confirmed by a reviewer" if confirm else "rejected by a reviewer")
        return self.graph.transaction("review", lambda tx: self._decide(tx, a, b, confirm, reason))

    def _decide(self, tx: Tx, a: Identifier, b: Identifier, confirm: bool, reason: str) -> list[str]:
        now = datetime.now(UTC)
        if not confirm and tx.run("linkage/linked", **pair_row(a, b)):
            unlink(tx, self.rules, a, b, reason, now)  # a link that is wrong: remove it and split
            return self._profiles(tx, a, b)
        commit = LinkCommit("review", proposals=[ProposedLink(a, b, "review", f"confirmed by a reviewer: {reason}", now)],
                            lock=True, record_links=False, require_profiles=True)
        if not confirm:
            plan_commit(tx, self.rules, commit, now)  # locks, and NotFound unless both have profiles
            tx.run("linkage/review_reject", **pair_row(a, b), reason=f"rejected by a reviewer: {reason}", now=now)
            return self._profiles(tx, a, b)
        (decision,) = commit_links(tx, self.rules, commit, now).decisions
        if not decision.accepted:  # raised in the transaction: nothing of the plan is kept
            raise FailedPrecondition(f"merge protection refuses to link {a} and {b}: {decision.reason}")
        tx.run("linkage/review_confirm", **pair_row(a, b), reason=decision.reason, now=now)
        return self._profiles(tx, a, b)

    @staticmethod
    def _profiles(tx: Tx, a: Identifier, b: Identifier) -> list[str]:
        found = {r["profile_id"] for i in (a, b) for r in tx.run("stitching/profile_of", type=i.type, value=i.value)}
        return sorted(found)
