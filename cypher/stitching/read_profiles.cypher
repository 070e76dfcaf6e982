// Locks the profiles a batch touches and reads their merge-protection and summary state.
// $profile_ids: [string] sorted; $limited_types: types with per-profile limits; $now.
// Returns profile_id, size, limited: [{type, value}], golden (JSON text), first_seen,
// last_seen (epoch ms), touchpoints_online, touchpoints_offline.
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
SET p.touched_at = $now
RETURN
  p.profile_id AS profile_id,
  COUNT { (p)<-[:BELONGS_TO]-(:Identifier) } AS size,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    WHERE i.type IN $limited_types
    RETURN {type: i.type, value: i.value}
  } AS limited,
  p.golden AS golden,
  p.first_seen.epochMillis AS first_seen,
  p.last_seen.epochMillis AS last_seen,
  coalesce(p.touchpoints_online, 0) AS touchpoints_online,
  coalesce(p.touchpoints_offline, 0) AS touchpoints_offline
