// Which of these salted identifier hashes belong to forgotten people.
// $hashes: [string]. Returns hash for each suppressed one.
// A query of its own, not a part of ingest/record_touchpoints: in a query that writes, Neo4j
// seeks a unique index with a lock on the entry, even on a miss, and every ingest batch that
// carried the same value (junk typed at every till) waited for the other's commit.
UNWIND $hashes AS hash
MATCH (s:Suppressed {hash: hash})
RETURN s.hash AS hash
