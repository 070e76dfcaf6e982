// A reviewer rejected a pair: its possible match goes, and an operator rejection stays, so
// neither stitching nor the linkage model ever links the pair.
// $a_type, $a_value, $b_type, $b_value (a the lower); $reason; $now.
MATCH (a:Identifier {type: $a_type, value: $a_value})
MATCH (b:Identifier {type: $b_type, value: $b_value})
OPTIONAL MATCH (a)-[possible:POSSIBLE_MATCH]-(b)
DELETE possible
MERGE (a)-[r:REJECTED_LINK]->(b)
  ON CREATE SET r.first_seen = $now, r.times_seen = 0, r.event_ids = []
SET r.by_operator = true, r.reason = $reason, r.last_seen = $now
