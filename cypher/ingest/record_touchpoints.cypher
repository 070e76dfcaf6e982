// Records touchpoints and the identifiers they carried; idempotent on event_id.
// Setting first_seen / last_seen also locks each identifier of a new touchpoint until
// commit, which stitching relies on (no other batch can move it between profiles).
// $batch: a fresh id for this write, so that the query can tell created from redelivered.
// $rows: [{event_id, occurred_at, source, channel, type, traits, properties (JSON text),
//          identifiers: [{type, value, primary}]}]; occurred_at in epoch milliseconds. where primary marks the identifier that
//          decides the touchpoint's profile.
// Returns one record per row: event_id, created (false when the event_id was known).
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
MERGE (t:Touchpoint {event_id: row.event_id})
  ON CREATE SET
    t.occurred_at = occurred_at,
    t.source = row.source,
    t.channel = row.channel,
    t.type = row.type,
    t.traits = row.traits,
    t.properties = row.properties,
    t.written_by = $batch
WITH t, row, occurred_at, t.written_by = $batch AS created
CALL (t, row, occurred_at, created) {
  WITH t, row, occurred_at WHERE created
  UNWIND row.identifiers AS carried
  MERGE (i:Identifier {type: carried.type, value: carried.value})
    ON CREATE SET i.first_seen = occurred_at, i.last_seen = occurred_at
    ON MATCH SET
      i.first_seen = CASE WHEN occurred_at < i.first_seen THEN occurred_at ELSE i.first_seen END,
      i.last_seen = CASE WHEN occurred_at > i.last_seen THEN occurred_at ELSE i.last_seen END
  CREATE (t)-[:CARRIED {primary: carried.primary}]->(i)
}
RETURN row.event_id AS event_id, created
