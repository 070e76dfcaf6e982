// Links new touchpoints to the identifiers they carried; primary marks the identifier that
// decides the touchpoint's profile (journeys follow only these edges). Blocklisted junk is
// not linked: the touchpoint keeps it in its `junk` property.
// $rows: [{event_id, identifiers: [{type, value, primary}]}]
UNWIND $rows AS row
MATCH (t:Touchpoint {event_id: row.event_id})
UNWIND row.identifiers AS carried
MATCH (i:Identifier {type: carried.type, value: carried.value})
CREATE (t)-[:CARRIED {primary: carried.primary}]->(i)
