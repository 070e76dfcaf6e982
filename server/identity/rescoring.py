"""Re-resolution after a better model: every probabilistic link judged again by the current one.

A graph that a bad model linked must be repairable without a rebuild. After a refit, each
probabilistic link is scored under the current model with the same decision rules as new
pairs (decisions.score): a link still accepted keeps its edge with the new evidence; one in
the review band, or stopped by a decision guard, becomes a possible match; one below `lower`
is removed. Profiles split where they fall apart (cause `rescore`, so segments re-evaluate
as after any unlink), and both sides of an undone link wait for online linkage again, so the
current model links them where they belong. Links a reviewer confirmed are never touched.

Pages are locked and re-read inside their transaction, so running servers may ingest and
link meanwhile; a second run changes nothing the first did not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from server.errors import FailedPrecondition, InvalidArgument
from server.graph import Tx
from server.identity.linkage.attributes import PersonAttributes
from server.identity.linkage.compare import levels
from server.identity.linkage.decisions import Verdict, score
from server.identity.linkage.model import LinkageModel
from server.identity.linkage.linker import Linker, evidence_fields
from server.identity.link_commit import split_profile
from server.tuning import WRITE_PAGE

DEFAULT_PAGE = WRITE_PAGE
MAX_PAGE = 10_000


@dataclass(frozen=True)
class RescoreProgress:
    links_total: int
    links_done: int


@dataclass
class RescoreSummary:
    model_version: str = ""
    links_scored: int = 0
    kept: int = 0
    to_review: int = 0
    undone: int = 0
    profiles_split: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class _Rescored:
    row: dict[str, object]  # the pair's keys and its new evidence
    verdict: Verdict


class Rescorer:
    def __init__(self, linker: Linker) -> None:
        self.linker = linker
        self.graph = linker.graph

    def run(self, page_size: int = 0, dry_run: bool = False) -> Iterator[RescoreProgress | RescoreSummary]:
        """Re-scores all probabilistic links, a page per transaction; progress, then the summary."""
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument(f"page_size must be between 0 (the default, {DEFAULT_PAGE}) and {MAX_PAGE}")
        model = self.linker.model(max_age=0)
        if model is None:
            raise FailedPrecondition("no current linkage model to re-score with: import records or refit first")
        links = [dict(r) for r in self.graph.read("linkage/probabilistic_links")]
        summary = RescoreSummary(model_version=model.version, dry_run=dry_run)
        size = page_size or DEFAULT_PAGE
        yield RescoreProgress(len(links), 0)
        for start in range(0, len(links), size):
            self._page(links[start:start + size], model, summary)
            yield RescoreProgress(len(links), min(start + size, len(links)))
        yield summary

    def _page(self, page: list[dict[str, object]], model: LinkageModel, summary: RescoreSummary) -> None:
        if summary.dry_run:
            rescored = self._rescore(self.graph.read("linkage/linked_persons", rows=page), model)
        else:
            rescored, split = self.graph.transaction("rescore links", lambda tx: self._write(tx, page, model))
            summary.profiles_split += split
        summary.links_scored += len(rescored)
        summary.kept += sum(r.verdict is Verdict.LINK for r in rescored)
        summary.to_review += sum(r.verdict is Verdict.REVIEW for r in rescored)
        summary.undone += sum(r.verdict is Verdict.NONE for r in rescored)

    def _write(self, tx: Tx, page: list[dict[str, object]], model: LinkageModel) -> tuple[list[_Rescored], int]:
        """Locks the page's identifiers, reads and re-scores the links still there, writes;
        returns the verdicts and how many profiles split."""
        now = datetime.now(UTC)
        keys = sorted({(str(r[f"{side}_type"]), str(r[f"{side}_value"])) for r in page for side in ("a", "b")})
        tx.run("linkage/lock", keys=[{"type": t, "value": v} for t, v in keys], now=now)
        rescored = self._rescore(tx.run("linkage/linked_persons", rows=page), model)
        kept = [r.row for r in rescored if r.verdict is Verdict.LINK]
        undone = [{**r.row, "review": r.verdict is Verdict.REVIEW} for r in rescored if r.verdict is not Verdict.LINK]
        if kept:
            tx.run("linkage/rescore_keep", rows=kept)
        if not undone:
            return rescored, 0
        profiles = [r["profile_id"] for r in tx.run("linkage/rescore_undo", rows=undone, now=now)]
        reason = f"probabilistic links re-scored by linkage model {model.version}"
        split = sum(len(split_profile(tx, self.linker.rules, pid, reason, now, cause="rescore")) > 1
                    for pid in sorted(profiles))
        return rescored, split

    def _rescore(self, records: Sequence[Mapping[str, object]], model: LinkageModel) -> list[_Rescored]:
        if not records:
            return []
        left = [PersonAttributes.from_dict(json.loads(str(r["a_person"]))) for r in records]
        right = [PersonAttributes.from_dict(json.loads(str(r["b_person"]))) for r in records]
        matrix = levels(left, right, self.linker.linkage)
        scores = score(model, matrix, self.linker.guards)
        return [_Rescored({"a_type": r["a_type"], "a_value": r["a_value"], "b_type": r["b_type"],
                           "b_value": r["b_value"], "probability": float(p), "model_version": model.version,
                           "fields": evidence_fields(model, row), "guard": guard}, verdict)
                for r, row, p, guard, verdict in zip(records, matrix, scores.probabilities, scores.guards,
                                                     scores.verdicts)]
