// Creates or updates the identifiers new touchpoints carried, with the range they were seen
// in, and links the touchpoints to them, in one round trip.
// Rows come sorted by (type, value): every batch locks identifiers in the same order, so
// concurrent batches wait for each other instead of deadlocking. The locks hold until
// commit, which stitching relies on (no other batch can move them between profiles).
// Blocklisted junk is kept as one Identifier node each (flagged by stitching), written only
// when first seen: junk shows up in a share of all events, and a node that every batch
// updated would make all batches wait for its lock. Touchpoints keep their junk values in
// their `junk` property, not as CARRIED edges, for the same reason.
// A new identifier also gets the label of its type (:Email, :Cookie: identifier_type_label),
// which Neo4j Browser's style colours it by.
// $rows: one map of lists (a list parameter that is sometimes empty would make Neo4j plan the
// query again): identifiers, junk: [{type, value, first_seen, last_seen (epoch ms), label}], one per
// distinct identifier, sorted; carried: [{event_id, identifiers: [{n: position in
// identifiers, primary}]}]: primary marks the identifier that decides the touchpoint's
// profile (journeys follow only these edges). The primary identifier of a touchpoint that
// states consent is marked states_consent, so that a profile's consent is read from its
// marked identifiers' touchpoints only (consent/of_profiles), not from every touchpoint.
CALL () {
  UNWIND range(0, size($rows.identifiers) - 1) AS n
  WITH n, $rows.identifiers[n] AS row
  WITH n, row, datetime({epochMillis: row.first_seen}) AS first_seen, datetime({epochMillis: row.last_seen}) AS last_seen
  MERGE (i:Identifier {type: row.type, value: row.value})
    ON CREATE SET i.first_seen = first_seen, i.last_seen = last_seen, i:$(row.label)
    ON MATCH SET
      i.first_seen = CASE WHEN first_seen < i.first_seen THEN first_seen ELSE i.first_seen END,
      i.last_seen = CASE WHEN last_seen > i.last_seen THEN last_seen ELSE i.last_seen END
  WITH n, i ORDER BY n  // the positions carried rows name, whatever order the rows were written in
  RETURN collect(i) AS written
}
CALL () {
  UNWIND $rows.junk AS row
  MERGE (i:Identifier {type: row.type, value: row.value})
    ON CREATE SET i.first_seen = datetime({epochMillis: row.first_seen}),
                  i.last_seen = datetime({epochMillis: row.last_seen}), i:$(row.label)
}
CALL (written) {
  UNWIND $rows.carried AS row
  MATCH (t:Touchpoint {event_id: row.event_id})
  UNWIND row.identifiers AS carried
  WITH t, carried, written[carried.n] AS i
  CREATE (t)-[:CARRIED {primary: carried.primary}]->(i)
  FOREACH (_ IN CASE WHEN carried.primary AND t:StatesConsent AND i.states_consent IS NULL THEN [1] ELSE [] END |
    SET i.states_consent = true)
}
