// Records touchpoints; idempotent on event_id. An event that carries an identifier of a
// forgotten person (its salted hash is Suppressed) is refused: nothing of it is written.
// Their identifiers are written next, by ingest/record_identifiers, for the new touchpoints only.
// $batch: a fresh id for this write, so that the query can tell created from redelivered.
// $rows: [{event_id, occurred_at (epoch ms), source, channel, type, traits, properties
//          (JSON text), junk: ["type:value" of the blocklisted values it carried],
//          numeric: {`prop.<name>`: float} (the numeric properties, which segment rules sum),
//          invalid: [JSON text {type, value, reason, replayable}: identifiers kept as invalid;
//          a touchpoint with any is labelled HasInvalid],
//          hashes: [positions in $hashes of its identifiers' salted hashes]}];
// $hashes: the salted hashes of the batch's identifiers, distinct.
// Returns a record only for the rows not created (every other one was): event_id, forgotten:
// [positions in $hashes of its identifiers that are suppressed] (empty when the event_id was
// known already).
CALL () {
  UNWIND range(0, size($hashes) - 1) AS n
  MATCH (:Suppressed {hash: $hashes[n]})
  RETURN collect(n) AS suppressed
}
UNWIND $rows AS row
WITH row, [n IN row.hashes WHERE n IN suppressed] AS forgotten
OPTIONAL CALL (row, forgotten) {
  WITH row WHERE forgotten = []
  MERGE (t:Touchpoint {event_id: row.event_id})
    ON CREATE SET
      t.occurred_at = datetime({epochMillis: row.occurred_at}),
      t.source = row.source,
      t.channel = row.channel,
      t.type = row.type,
      t.traits = row.traits,
      t.properties = row.properties,
      t.junk = CASE WHEN size(row.junk) > 0 THEN row.junk END,
      t.written_by = $batch,
      t.invalid = CASE WHEN size(row.invalid) > 0 THEN row.invalid END,
      t += row.numeric
  WITH row, t, t.written_by = $batch AS created
  FOREACH (_ IN CASE WHEN created AND size(row.invalid) > 0 THEN [1] ELSE [] END | SET t:HasInvalid)
  RETURN created
}
WITH row, created, forgotten WHERE NOT coalesce(created, false)
RETURN row.event_id AS event_id, forgotten
