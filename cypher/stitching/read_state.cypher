// Reads what stitching needs in one round trip: the identifiers (locked already: ingest
// MERGEd them, linkage locked them), then their profiles, locked in profile_id order (every
// batch locks identifiers, then profiles, in the same order, so batches wait instead of
// deadlocking), with their merge-protection and summary state. A flagged identifier links
// nothing whoever it was seen with, so its neighbours are not read: a junk value's edges
// grow with the graph.
// $keys: [{type, value}]; $strong_types: identifier types that name a known person;
// $cap: most neighbours to read; $limited_types: types with per-profile limits; $now.
// Returns one row: identifiers: [{type, value, flag, profile_id (null when none),
// neighbours: [{type, value}], unlinked: [{type, value}] (identifiers an operator unlinked
// from this one)}], profiles: [{profile_id, size, limited: [{type, value}], golden (JSON
// text), first_seen, last_seen (epoch ms), touchpoints_online, touchpoints_offline}].
CALL () {
  UNWIND $keys AS key
  MATCH (i:Identifier {type: key.type, value: key.value})
  OPTIONAL MATCH (i)-[:BELONGS_TO]->(p:Profile)
  WITH i, p.profile_id AS profile_id, i.flag AS flag
  RETURN collect({
    type: i.type,
    value: i.value,
    flag: flag,
    profile_id: profile_id,
    neighbours: COLLECT {
      MATCH (i)-[:LINKED|REJECTED_LINK]-(n:Identifier)
      WHERE flag IS NULL AND n.type IN $strong_types AND n.type <> i.type AND coalesce(n.flag, '') <> 'blocklisted'
      RETURN DISTINCT {type: n.type, value: n.value}
      LIMIT $cap
    },
    unlinked: COLLECT {
      MATCH (i)-[:REJECTED_LINK {by_operator: true}]-(o:Identifier)
      WHERE flag IS NULL
      RETURN {type: o.type, value: o.value}
    }
  }) AS identifiers, collect(DISTINCT profile_id) AS profile_ids
}
CALL (profile_ids) {
  UNWIND profile_ids AS profile_id
  WITH profile_id ORDER BY profile_id
  MATCH (p:Profile {profile_id: profile_id})
  SET p.touched_at = $now
  RETURN collect({
    profile_id: p.profile_id,
    size: COUNT { (p)<-[:BELONGS_TO]-() },  // only identifiers belong to profiles: the degree, no label checks
    limited: COLLECT {
      MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
      WHERE i.type IN $limited_types
      RETURN {type: i.type, value: i.value}
    },
    golden: p.golden,
    first_seen: p.first_seen.epochMillis,
    last_seen: p.last_seen.epochMillis,
    touchpoints_online: coalesce(p.touchpoints_online, 0),
    touchpoints_offline: coalesce(p.touchpoints_offline, 0)
  }) AS profiles
}
RETURN identifiers, profiles
