// Repairs profiles that share one component: moves every identifier of the absorbed
// profiles to the survivor and records the merge, as incremental stitching would have.
// $survivor: profile id; $absorbed: [profile id]; $now.
MATCH (new:Profile {profile_id: $survivor})
UNWIND $absorbed AS absorbed
MATCH (old:Profile {profile_id: absorbed})
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
CREATE (old)-[:MERGED_INTO {at: $now, link: 'repaired by recomputation'}]->(new)
