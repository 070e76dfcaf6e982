// Read only: the profiles among $profile_ids whose membership of a segment would change
// (the rule holds and there is no edge, or the other way round). A full evaluation asks
// this first and locks and evaluates only these, so that a page where nothing changed
// costs no write.
// Template: the RULE placeholder comment is replaced by the compiled rule (see segments/evaluate).
// $segment; $profile_ids: [string]; $now (epoch ms). Returns profile_id.
MATCH (s:Segment {name: $segment})
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
WITH s, p, (coalesce(p.active, false) AND /*RULE*/) AS member
WHERE member <> EXISTS { (p)-[:IN_SEGMENT]->(s) }
RETURN p.profile_id AS profile_id
