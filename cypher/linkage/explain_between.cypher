// ExplainLink, why not: what stands between two profiles' identifiers: rejected links (by
// merge protection, or by an operator or reviewer: by_operator) and possible matches waiting
// for review. Read-only.
// $profile_a, $profile_b (current ids); $limit.
// Returns kind ('rejected' | 'possible'), by_operator, a_type, a_value (of profile a),
// b_type, b_value (of profile b), reason, probability, model_version, guard, last_seen
// (epoch ms); operator rejections first, then the most recent.
MATCH (:Profile {profile_id: $profile_a})<-[:BELONGS_TO]-(a:Identifier)-[r:REJECTED_LINK|POSSIBLE_MATCH]-(b:Identifier)
WHERE (b)-[:BELONGS_TO]->(:Profile {profile_id: $profile_b})
WITH a, b, r, CASE type(r) WHEN 'POSSIBLE_MATCH' THEN 'possible' ELSE 'rejected' END AS kind,
     coalesce(r.by_operator, false) AS by_operator
RETURN kind, by_operator, a.type AS a_type, a.value AS a_value, b.type AS b_type, b.value AS b_value,
       r.reason AS reason, r.probability AS probability, r.model_version AS model_version, r.guard AS guard,
       r.last_seen.epochMillis AS last_seen
ORDER BY by_operator DESC, kind DESC, last_seen DESC
LIMIT $limit
