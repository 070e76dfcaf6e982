// Profiles for a batch of lookups, each by identifier or by profile id (current or merged).
// An index seek plus one hop: identifiers point at their profile.
// $refs: [{type, value, profile_id}] (either type and value, or profile_id).
// Returns n (position in $refs), profile_id (null when not found), forgotten, and the profile
// with the names of its segments (times in epoch milliseconds) and its consent: [[key,
// value]] of the consent.*, consent_at.* and consent_source.* properties.
UNWIND range(0, size($refs) - 1) AS n
WITH n, $refs[n] AS ref
OPTIONAL MATCH (:Identifier {type: ref.type, value: ref.value})-[:BELONGS_TO]->(held:Profile)
OPTIONAL MATCH (named:Profile {profile_id: ref.profile_id})
OPTIONAL MATCH (named)-[:MERGED_INTO*0..]->(current:Profile {active: true})
WITH n, coalesce(held, current) AS p, named
RETURN
  n,
  p.profile_id AS profile_id,
  coalesce(named.forgotten, false) AS forgotten,
  CASE WHEN p IS NULL THEN [] ELSE COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    RETURN {type: i.type, value: i.value, first_seen: i.first_seen.epochMillis, last_seen: i.last_seen.epochMillis}
  } END AS identifiers,
  CASE WHEN p IS NULL THEN [] ELSE COLLECT {
    MATCH (p)<-[:MERGED_INTO*1..]-(old:Profile)
    RETURN old.profile_id
  } END AS merged_profile_ids,
  CASE WHEN p IS NULL THEN [] ELSE COLLECT {
    MATCH (p)-[:IN_SEGMENT]->(s:Segment)
    RETURN s.name
  } END AS segments,
  CASE WHEN p IS NULL THEN [] ELSE [k IN keys(p) WHERE k STARTS WITH 'consent' | [k, p[k]]] END AS consent,
  p.golden AS golden,
  p.first_seen.epochMillis AS first_seen,
  p.last_seen.epochMillis AS last_seen,
  coalesce(p.touchpoints_online, 0) AS touchpoints_online,
  coalesce(p.touchpoints_offline, 0) AS touchpoints_offline
