// Turns an identifier's links (all of them, or the one to $other) into operator
// rejections, so that stitching never links the pair again.
// $type, $value; $other_type, $other_value (null for all links); $reason; $now.
// Returns profile_id (the identifier's profile), unlinked (how many links were removed).
MATCH (i:Identifier {type: $type, value: $value})-[:BELONGS_TO]->(p:Profile)
SET p.touched_at = $now
WITH i, p
CALL (i) {
  OPTIONAL MATCH (i)-[l:LINKED]-(o:Identifier)
  WHERE $other_type IS NULL OR (o.type = $other_type AND o.value = $other_value)
  WITH l, o, startNode(l) AS a, endNode(l) AS b
  WHERE l IS NOT NULL
  MERGE (a)-[r:REJECTED_LINK]->(b)
    ON CREATE SET r.first_seen = l.first_seen, r.times_seen = 0, r.event_ids = []
  SET r.by_operator = true, r.reason = 'unlinked by an operator: ' + $reason, r.unlinked_at = $now,
      r.last_seen = l.last_seen, r.times_seen = r.times_seen + l.times_seen, r.event_ids = l.event_ids
  DELETE l
  RETURN count(l) AS unlinked
}
RETURN p.profile_id AS profile_id, unlinked
