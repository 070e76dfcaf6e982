// Backfill: writes touchpoints' numeric `prop.<name>` copies of their event properties and
// marks the profiles they belong to for segment re-evaluation (a sum may have changed).
// $rows: [{event_id, numeric: {`prop.<name>`: float}}]. Returns updated.
UNWIND $rows AS row
MATCH (t:Touchpoint {event_id: row.event_id})
WITH t, row, any(k IN keys(row.numeric) WHERE t[k] IS NULL OR t[k] <> row.numeric[k]) AS stale
WHERE stale
SET t += row.numeric
WITH t
OPTIONAL MATCH (t)-[:CARRIED {primary: true}]->(:Identifier)-[:BELONGS_TO]->(p:Profile)
FOREACH (_ IN CASE WHEN p IS NULL THEN [] ELSE [1] END |
  SET p:SegmentsDirty, p.dirty_since = coalesce(p.dirty_since, datetime()),
      p.dirty_cause = coalesce(p.dirty_cause, 'backfill'))
RETURN count(t) AS updated
