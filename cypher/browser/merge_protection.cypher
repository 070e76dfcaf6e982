// Neo4j Browser: what merge protection refused most recently, and every flagged identifier
// (blocklisted junk, shared devices), for operators checking that strangers stay apart.
// $limit, e.g. :param {limit: 50}
MATCH (a:Identifier)-[r:REJECTED_LINK]->(b:Identifier)
RETURN a.type + ':' + a.value AS from, b.type + ':' + b.value AS to, r.reason AS reason,
       r.times_seen AS times_seen, r.last_seen AS last_seen, r.event_ids AS evidence
ORDER BY r.last_seen DESC
LIMIT $limit
