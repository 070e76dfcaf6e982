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
FOREACH (key IN [k IN keys(old) WHERE k STARTS WITH 'trait.'] | SET old[key] = null)
SET old.active = false, old.merged_at = $now, old.golden = null
// both sides are re-evaluated for segments: the survivor may enter, and the absorbed id exits
// the segments it was in (one in none, e.g. made and merged away in one batch, has nothing to
// exit); a merge names the cause over an earlier ingest not yet evaluated
SET new:SegmentsDirty, new.dirty_since = coalesce(new.dirty_since, datetime()), new.dirty_cause = 'merge'
FOREACH (_ IN CASE WHEN EXISTS { (old)-[:IN_SEGMENT]->() } THEN [1] ELSE [] END |
  SET old:SegmentsDirty, old.dirty_since = coalesce(old.dirty_since, datetime()), old.dirty_cause = 'merge')
CREATE (old)-[:MERGED_INTO {
  at: $now,
  link: row.a_type + ':' + row.a_value + ' ~ ' + row.b_type + ':' + row.b_value,
  event_id: row.event_id
}]->(new)
