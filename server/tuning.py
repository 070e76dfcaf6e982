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

# Profiles the segment worker claims for evaluation at once. A claim that found fewer means
# the worker has caught up: it waits SEGMENT_SETTLE_S before the next, so that under steady
# ingest each claim gathers the profiles of several batches (every claim is a transaction and
# a read of the definitions; claiming per batch cost Neo4j more CPU than the ingest itself).
SEGMENT_CLAIM = 500
SEGMENT_SETTLE_S = 0.25

# Identifiers the online linkage worker links per round, and how long an idle worker waits.
ONLINE_LINKAGE_BATCH = 200
IDLE_WAIT_S = 0.05

# A fit the checks refuse is tried once more on a sample this many times larger (at most every
# Matchable record): a refusal is often too little evidence (few matches among the candidates of
# a small sample in dense postcodes). Four times the records is about four times the fit's time.
REFUSED_FIT_SAMPLE_GROWTH = 4

# An import refits the linkage model when the graph holds this many times the records the current
# model was fitted on (records.RecordImporter._outgrown): a model fitted on the first thousand
# signups by the online worker has seen no CRM record, and one fitted on a first small import
# little of the data; a refused refit keeps the current model.
MODEL_OUTGROWN_BY = 2.0

# When the online worker fits a model itself (no model is current, identifiers wait for one):
# - the graph holds at least ONLINE_FIT_MIN_RECORDS Matchable records (fewer give a fit little
#   to learn from; an import or RefitLinkageModel can still fit on fewer);
# - the oldest waiting identifier has waited ONLINE_FIT_AFTER_S, so that an import in progress
#   fits on all its records first rather than the worker on the first signups;
# - a refused attempt is retried after ONLINE_FIT_RETRY_S, doubled per refusal in a row up to
#   ONLINE_FIT_MAX_RETRY_S (a refit on unchanged records is refused again; new records may help);
# - one server at a time, under a claim in the graph that expires after ONLINE_FIT_LEASE_S (a fit
#   of 20,000 records takes minutes; a server that died fitting frees the claim by this);
# - the conditions are checked every ONLINE_FIT_CHECK_S (each check is a few small reads), and
#   while identifiers wait, a warning says so every ONLINE_WAIT_REPORT_S.
ONLINE_FIT_MIN_RECORDS = 1000
ONLINE_FIT_AFTER_S = 120.0
ONLINE_FIT_RETRY_S = 600.0
ONLINE_FIT_MAX_RETRY_S = 6 * 3600.0
ONLINE_FIT_LEASE_S = 1800.0
ONLINE_FIT_CHECK_S = 10.0
ONLINE_WAIT_REPORT_S = 60.0

# How long a server trusts what it read of rarely changing definitions (the segment
# definitions, the current linkage model, its absence) before reading them again: another
# server may change them. Changes this server makes itself are seen at once.
DEFINITIONS_MAX_AGE_S = 1.0

# Threads answering coalesced lookups: two keep one query in flight while the next batch
# gathers (more add nothing on a 2-core machine; Neo4j is the bottleneck).
LOOKUP_WORKERS = 2

# How often Python hands the GIL between threads (its default is 5 ms). The event loop that
# answers every stream and health check shares the GIL with the threads running Neo4j work;
# a shorter interval lets it in sooner while lookups and ingest keep those threads busy.
GIL_SWITCH_INTERVAL_S = 0.001

# Calls waiting for a thread of one work pool, and lookups waiting for the coalescer, beyond
# which a call is refused with RESOURCE_EXHAUSTED naming the queue. Every open stream has at
# most one call in a pool at a time, so a pool's queue stays well under the per-method limit
# of open calls (10,000) in normal running; a queue this long is minutes of work, and a
# client is better told to retry elsewhere than left waiting with the memory growing.
POOL_QUEUE_LIMIT = 10_000
LOOKUP_QUEUE_LIMIT = 100_000
