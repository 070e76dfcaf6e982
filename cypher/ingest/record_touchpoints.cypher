// Records touchpoints and the identifiers they carried; idempotent on event_id.
// $batch: a fresh id for this write, so that the query can tell created from redelivered.
// $rows: [{event_id, occurred_at, source, channel, type, traits, properties (JSON text),
//          identifiers: [{type, value}]}]
// Returns one record per row: event_id, created (false when the event_id was known).
UNWIND $rows AS row
MERGE (t:Touchpoint {event_id: row.event_id})
  ON CREATE SET
    t.occurred_at = row.occurred_at,
    t.source = row.source,
    t.channel = row.channel,
    t.type = row.type,
    t.traits = row.traits,
    t.properties = row.properties,
    t.written_by = $batch
WITH t, row, t.written_by = $batch AS created
CALL (t, row, created) {
  WITH t, row WHERE created
  UNWIND row.identifiers AS carried
  MERGE (i:Identifier {type: carried.type, value: carried.value})
    ON CREATE SET i.first_seen = row.occurred_at, i.last_seen = row.occurred_at
    ON MATCH SET
      i.first_seen = CASE WHEN row.occurred_at < i.first_seen THEN row.occurred_at ELSE i.first_seen END,
      i.last_seen = CASE WHEN row.occurred_at > i.last_seen THEN row.occurred_at ELSE i.last_seen END
  MERGE (t)-[:CARRIED]->(i)
}
RETURN row.event_id AS event_id, created
