// Evaluates one segment's rule for the given profiles and brings their membership edges in
// line: an edge is created for a profile that now matches, deleted for one that no longer
// does (or is no longer active: merged away or forgotten). Runs only while the segment is
// still at $version, so an evaluation by a superseded definition changes nothing.
// Template: the RULE placeholder comment is replaced by the compiled rule (server/identity/segments/compile.py),
// whose parameters r0, r1, ... are passed with these.
// $segment; $version; $profile_ids: [string]; $now (epoch ms).
// Returns one record per changed profile: profile_id, entered (true: enter, false: exit).
MATCH (s:Segment {name: $segment})
WHERE s.version = $version
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
WITH s, p, (coalesce(p.active, false) AND /*RULE*/) AS member
OPTIONAL MATCH (p)-[m:IN_SEGMENT]->(s)
WITH s, p, member, m
WHERE member <> (m IS NOT NULL)
FOREACH (_ IN CASE WHEN member THEN [1] ELSE [] END |
  CREATE (p)-[:IN_SEGMENT {since: datetime({epochMillis: $now})}]->(s))
FOREACH (edge IN CASE WHEN member THEN [] ELSE [m] END | DELETE edge)
RETURN p.profile_id AS profile_id, member AS entered
