// Records links that merge protection refused, with the reason, so that operators see them.
// $rows: [{a_type, a_value, b_type, b_value, event_id, occurred_at (epoch ms), reason}];
// $evidence_kept: how many recent event ids an edge keeps.
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
MATCH (a:Identifier {type: row.a_type, value: row.a_value})
MATCH (b:Identifier {type: row.b_type, value: row.b_value})
MERGE (a)-[r:REJECTED_LINK]->(b)
  ON CREATE SET r.first_seen = occurred_at, r.last_seen = occurred_at, r.times_seen = 0, r.event_ids = []
SET
  r.reason = CASE WHEN r.by_operator THEN r.reason ELSE row.reason END,
  r.times_seen = r.times_seen + 1,
  r.first_seen = CASE WHEN occurred_at < r.first_seen THEN occurred_at ELSE r.first_seen END,
  r.last_seen = CASE WHEN occurred_at > r.last_seen THEN occurred_at ELSE r.last_seen END,
  r.event_ids = (r.event_ids + row.event_id)[-$evidence_kept..]
