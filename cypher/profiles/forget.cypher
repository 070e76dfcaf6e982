// Erases a person: the profile's touchpoints (with their consent statements), identifiers,
// golden record and consent state. Only salted
// hashes of the identifiers stay, as Suppressed nodes, so that ingest can refuse them later.
// Quarantined items that carry any of the identifiers go too (a scan of the quarantine,
// which retention keeps small; forgetting is rare).
// The profile node stays as a tombstone (no personal data) so its id answers "forgotten".
// $profile_id; $hashes: [string] (salted hashes of the profile's identifiers); $now.
// Returns identifiers, touchpoints (how many were erased).
MATCH (p:Profile {profile_id: $profile_id, active: true})
CALL (p) {
  MATCH (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint)
  DETACH DELETE t
  RETURN count(t) AS touchpoints
}
CALL (p) {
  MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
  DETACH DELETE i
  RETURN count(i) AS identifiers
}
CALL {
  // quarantined events and records that carry any of them (never kept in clear)
  MATCH (r:Rejected) WHERE any(h IN r.hashes WHERE h IN $hashes)
  DELETE r
}
CALL {
  UNWIND $hashes AS hash
  MERGE (s:Suppressed {hash: hash})
    ON CREATE SET s.since = $now
}
CALL (p) {
  // consent that profiles merged into it still hold, not folded in yet (consent/save)
  MATCH (old:Profile)-[:MERGED_INTO*1..]->(p)
  FOREACH (key IN [k IN keys(old) WHERE k STARTS WITH 'consent'] | SET old[key] = null)
}
// the golden record and the consent state go; the statements went with the touchpoints
FOREACH (key IN [k IN keys(p) WHERE k STARTS WITH 'trait.' OR k STARTS WITH 'consent'] | SET p[key] = null)
SET p.active = false, p.forgotten = true, p.forgotten_at = $now,
    p.golden = null, p.first_seen = null, p.last_seen = null
// the segments it was in see it exit
FOREACH (_ IN CASE WHEN EXISTS { (p)-[:IN_SEGMENT]->() } THEN [1] ELSE [] END |
  SET p:SegmentsDirty, p.dirty_since = coalesce(p.dirty_since, datetime()), p.dirty_cause = 'forget')
RETURN identifiers, touchpoints
