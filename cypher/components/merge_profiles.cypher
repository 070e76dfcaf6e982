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
SET old.active = false, old.merged_at = $now, old.golden = null
CREATE (old)-[:MERGED_INTO {at: $now, link: 'repaired by recomputation'}]->(new)
