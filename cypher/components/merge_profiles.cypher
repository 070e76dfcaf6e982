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
// both sides are re-evaluated for segments (the absorbed id exits, the survivor may enter);
// a merge names the cause over an earlier ingest not yet evaluated
SET old:SegmentsDirty, old.dirty_since = coalesce(old.dirty_since, datetime()),
    old.dirty_cause = 'merge',
    new:SegmentsDirty, new.dirty_since = coalesce(new.dirty_since, datetime()),
    new.dirty_cause = 'merge'
CREATE (old)-[:MERGED_INTO {at: $now, link: 'repaired by recomputation'}]->(new)
