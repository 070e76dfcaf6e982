"""Tuning: how much work one query or transaction takes on, in one place.

These are not settings an operator should need: each was chosen by measurement on the
benchmarks in bench/ (bigger pages amortise round trips; smaller ones keep transactions,
locks and memory short). They live here so that a change is one edit and its reason is
next to it, rather than a number repeated in several modules.
"""

from __future__ import annotations

# Rows one write transaction takes on when a job walks the graph page by page: a replay of
# the quarantine, a rescoring of links, an import's records. About a second of work each.
WRITE_PAGE = 500

# Rows one read or small-row write query takes on (classifying an import's records, the
# segment evaluation pages, the trait copies of the backfill): keys only, cheap per row.
READ_PAGE = 2000

# Matchable subjects whose candidates one query fetches when sampling for a fit.
FIT_CANDIDATE_CHUNK = 500

# Profiles the segment worker claims for evaluation at once.
SEGMENT_CLAIM = 500

# Identifiers the online linkage worker links per round, and how long an idle worker waits.
ONLINE_LINKAGE_BATCH = 200
IDLE_WAIT_S = 0.05

# Threads answering coalesced lookups: two keep one query in flight while the next batch
# gathers (more add nothing on a 2-core machine; Neo4j is the bottleneck).
LOOKUP_WORKERS = 2

# How often Python hands the GIL between threads (its default is 5 ms). The event loop that
# answers every stream and health check shares the GIL with the threads running Neo4j work;
# a shorter interval lets it in sooner while lookups and ingest keep those threads busy.
GIL_SWITCH_INTERVAL_S = 0.001
