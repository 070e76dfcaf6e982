// Queues Matchable identifiers for online linkage: an import's records that no model could
// score wait there for one. An identifier queued already keeps its place (and its wait).
// $keys: [{type, value}]; $now.
UNWIND $keys AS key
MATCH (m:Identifier {type: key.type, value: key.value})
WHERE m:Matchable
SET m:LinkPending, m.pending_since = coalesce(m.pending_since, $now)
