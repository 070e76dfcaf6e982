// Records touchpoints; idempotent on event_id. Events carrying an identifier of a forgotten
// person were left out before (ingest/suppressed). Their identifiers are written next, by
// ingest/record_identifiers, for the new touchpoints only.
// $batch: a fresh id for this write, so that the query can tell created from redelivered.
// $rows: [{event_id, occurred_at (epoch ms), source, channel, type, traits, properties
//          (JSON text), junk: ["type:value" of the blocklisted values it carried],
//          numeric: {`prop.<name>`: float} (the numeric properties, which segment rules sum),
//          invalid: [JSON text {type, value, reason, replayable}: identifiers kept as invalid;
//          a touchpoint with any is labelled HasInvalid], consent_granted, consent_denied:
//          [category] (consent statements: a touchpoint with any is labelled StatesConsent and,
//          until consent/of_profiles reads it, ConsentUnread), consent_unknown: ["<name>:
//          granted|denied"] (statements of categories not configured: kept, not used)}].
// Returns a record only for the rows not created (their event_id was known already).
UNWIND $rows AS row
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
    t.consent_granted = CASE WHEN size(row.consent_granted) > 0 THEN row.consent_granted END,
    t.consent_denied = CASE WHEN size(row.consent_denied) > 0 THEN row.consent_denied END,
    t.consent_unknown = CASE WHEN size(row.consent_unknown) > 0 THEN row.consent_unknown END,
    t += row.numeric
WITH row, t, t.written_by = $batch AS created
FOREACH (_ IN CASE WHEN created AND size(row.invalid) > 0 THEN [1] ELSE [] END | SET t:HasInvalid)
FOREACH (_ IN CASE WHEN created AND size(row.consent_granted) + size(row.consent_denied) > 0 THEN [1] ELSE [] END |
  SET t:StatesConsent:ConsentUnread)
WITH row WHERE NOT created
RETURN row.event_id AS event_id
