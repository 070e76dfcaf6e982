// Takes linked identifiers off the online linkage queue, unless ingest described one again
// after the worker read it (its pending_since is then later than the one read).
// $rows: [{type, value, pending_since (epoch ms, as read)}].
UNWIND $rows AS row
MATCH (m:Identifier {type: row.type, value: row.value})
WHERE m:LinkPending AND m.pending_since.epochMillis <= row.pending_since
REMOVE m:LinkPending
SET m.pending_since = null
