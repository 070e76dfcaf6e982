// ExplainLink, merge protection now: the state stitching/read_state gives the planner,
// read without locking or touching anything, so that explaining never writes; and one
// unflagged member per profile to propose a link from when a side is a profile ref.
// $profile_ids: [string]; $limited_types: types with per-profile limits.
// Returns profile_id, size, limited: [{type, value}], golden (JSON text), first_seen,
// last_seen (epoch ms), touchpoints_online, touchpoints_offline, representative: {type, value}
// (null when every member is flagged).
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
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
  coalesce(p.touchpoints_offline, 0) AS touchpoints_offline,
  head(COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    WHERE i.flag IS NULL
    RETURN {type: i.type, value: i.value} ORDER BY i.type, i.value LIMIT 1
  }) AS representative
