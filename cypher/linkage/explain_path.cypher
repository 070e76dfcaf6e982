// ExplainLink, how: the shortest path of accepted links (LINKED, any kind) joining two
// identifiers of one profile, through unflagged identifiers of that profile only (flagged
// ones link no more), at most 15 hops. Read-only.
// $a_type, $a_value, $b_type, $b_value; $profile_id (the profile both belong to).
// Returns one row, or none when no such path exists: steps: [{a_type, a_value, b_type,
// b_value, kind ('linked' | 'probabilistic' | 'confirmed'), reason, times_seen, first_seen,
// last_seen (epoch ms), event_ids, probability, model_version, fields (JSON)}], each step
// oriented from a towards b.
MATCH (p:Profile {profile_id: $profile_id})
MATCH (a:Identifier {type: $a_type, value: $a_value})-[:BELONGS_TO]->(p)
MATCH (b:Identifier {type: $b_type, value: $b_value})-[:BELONGS_TO]->(p)
WHERE a.flag IS NULL
MATCH path = SHORTEST 1 (a) (()-[:LINKED]-(n:Identifier WHERE n.flag IS NULL AND EXISTS { (n)-[:BELONGS_TO]->(p) })){1,15} (b)
WITH nodes(path) AS ns, relationships(path) AS rs
RETURN [k IN range(0, size(rs) - 1) | {
  a_type: ns[k].type, a_value: ns[k].value, b_type: ns[k + 1].type, b_value: ns[k + 1].value,
  kind: coalesce(rs[k].kind, 'linked'), reason: rs[k].reason, times_seen: rs[k].times_seen,
  first_seen: rs[k].first_seen.epochMillis, last_seen: rs[k].last_seen.epochMillis,
  event_ids: rs[k].event_ids, probability: rs[k].probability, model_version: rs[k].model_version,
  fields: rs[k].fields
}] AS steps
