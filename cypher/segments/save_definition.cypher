// Stores a segment definition as its next version (the Segment node holds the current one;
// every version is kept as a SegmentVersion node) and returns the new version.
// The saver takes the segment's evaluation lease in the same transaction, so that no
// worker starts a second full evaluation of the new version beside the saver's own.
// $segment_name; $description; $rule (JSON text, the proto JSON mapping of the rule); $predicate
// (the compiled Cypher, for operators); $depends_on: [segment name]; $time_dependent; $owner,
// $lease_ms: the lease; $now (epoch ms).
MERGE (s:Segment {name: $segment_name})
  ON CREATE SET s.version = 0, s.created_at = datetime({epochMillis: $now})
SET s.locked_at = datetime({epochMillis: $now})
WITH s
SET s.version = s.version + 1,
    s.description = $description,
    s.rule = $rule,
    s.predicate = $predicate,
    s.depends_on = $depends_on,
    s.time_dependent = $time_dependent,
    s.updated_at = datetime({epochMillis: $now}),
    s.lease_owner = $owner,
    s.lease_until = datetime({epochMillis: $now + $lease_ms})
CREATE (s)-[:HAS_VERSION]->(:SegmentVersion {
  name: $segment_name, version: s.version, description: $description, rule: $rule,
  created_at: datetime({epochMillis: $now})
})
RETURN s.version AS version
