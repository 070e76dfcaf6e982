// Backfill: one page of touchpoints that carry event properties (JSON text), in event id
// order, for writing their numeric `prop.<name>` copies.
// $after: the last event id of the previous page ('' for the first); $limit.
// Returns event_id, properties.
MATCH (t:Touchpoint)
WHERE t.event_id > $after
RETURN t.event_id AS event_id, t.properties AS properties
ORDER BY t.event_id
LIMIT $limit
