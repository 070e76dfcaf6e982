"""Backfill for graphs written before segments: the `trait.<key>` copies of golden records
on profiles and the numeric `prop.<name>` copies of event properties on touchpoints, which
segment rules read. Idempotent, in pages (one transaction each); what it changes is marked
for segment re-evaluation, so the worker brings membership up to date afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from server.graph import Graph
from server.identity.golden import from_json, trait_properties
from server.identity.golden import numeric_properties
from server.tuning import READ_PAGE

PAGE_SIZE = READ_PAGE


@dataclass(frozen=True)
class Backfilled:
    profiles: int
    touchpoints: int


def backfill(graph: Graph, progress: Callable[[str], None] = lambda _: None) -> Backfilled:
    return Backfilled(_profiles(graph, progress), _touchpoints(graph, progress))


def _profiles(graph: Graph, progress: Callable[[str], None]) -> int:
    updated, after = 0, ""
    while page := graph.read("backfill/profiles_page", after=after, limit=PAGE_SIZE):
        rows = [{"profile_id": r["profile_id"], "traits": trait_properties(from_json(r["golden"]))}
                for r in page if r["golden"]]
        updated += _write(graph, "backfill/set_traits", [r for r in rows if r["traits"]])
        after = page[-1]["profile_id"]
        progress(f"profiles up to {after}: {updated} updated")
    return updated


def _touchpoints(graph: Graph, progress: Callable[[str], None]) -> int:
    updated, after = 0, ""
    while page := graph.read("backfill/touchpoints_page", after=after, limit=PAGE_SIZE):
        rows = [{"event_id": r["event_id"], "numeric": numeric_properties(json.loads(r["properties"] or "{}"))}
                for r in page]
        updated += _write(graph, "backfill/set_numbers", [r for r in rows if r["numeric"]])
        after = page[-1]["event_id"]
        progress(f"touchpoints up to {after}: {updated} updated")
    return updated


def _write(graph: Graph, query: str, rows: list[dict[str, object]]) -> int:
    if not rows:
        return 0
    records = graph.transaction("backfill", lambda tx: tx.run(query, rows=rows))
    return int(records[0]["updated"]) if records else 0
