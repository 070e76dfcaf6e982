// Records accepted links between identifiers seen together, with their evidence.
// One LINKED edge per pair, directed from the lower (type, value) to the higher.
// $rows: [{a_type, a_value, b_type, b_value, event_id, occurred_at (epoch ms)}]; $evidence_kept: how
// many recent event ids an edge keeps.
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
MATCH (a:Identifier {type: row.a_type, value: row.a_value})
MATCH (b:Identifier {type: row.b_type, value: row.b_value})
MERGE (a)-[l:LINKED]->(b)
  ON CREATE SET l.first_seen = occurred_at, l.last_seen = occurred_at, l.times_seen = 0, l.event_ids = []
SET
  l.times_seen = l.times_seen + 1,
  l.first_seen = CASE WHEN occurred_at < l.first_seen THEN occurred_at ELSE l.first_seen END,
  l.last_seen = CASE WHEN occurred_at > l.last_seen THEN occurred_at ELSE l.last_seen END,
  l.event_ids = (l.event_ids + row.event_id)[-$evidence_kept..]
