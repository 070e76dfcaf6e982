// Marks, for each touchpoint, the identifier that decides its profile (its highest-priority
// identifier that is not blocklisted); journeys follow only these edges, so a touchpoint
// belongs to exactly one profile.
// $rows: [{event_id, type, value}]
UNWIND $rows AS row
MATCH (:Touchpoint {event_id: row.event_id})-[c:CARRIED]->(:Identifier {type: row.type, value: row.value})
SET c.primary = true
