// Merges profiles, in the order given: the absorbed profile's identifiers move to the
// survivor, the absorbed profile stays as an inactive node that points to the survivor, so
// a lookup by its id still resolves.
// $rows: [{absorbed, survivor, a_type, a_value, b_type, b_value, event_id}]; $now.
UNWIND $rows AS row
MATCH (old:Profile {profile_id: row.absorbed})
MATCH (new:Profile {profile_id: row.survivor})
CALL (old, new) {
  MATCH (i:Identifier)-[r:BELONGS_TO]->(old)
  DELETE r
  CREATE (i)-[:BELONGS_TO]->(new)
}
SET old.active = false, old.merged_at = $now, old.golden = null
CREATE (old)-[:MERGED_INTO {
  at: $now,
  link: row.a_type + ':' + row.a_value + ' ~ ' + row.b_type + ':' + row.b_value,
  event_id: row.event_id
}]->(new)
