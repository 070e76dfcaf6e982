// ExplainLink, how strong: the person attributes one side of the pair is scored by. The
// identifier itself when it is Matchable; otherwise (or for a profile ref) the Matchable
// identifiers of its profile, at most $limit. Read-only.
// $type, $value (null for a profile ref); $profile_id (the side's current profile); $limit.
// Returns type, value, person (JSON text of cleaned PersonAttributes).
OPTIONAL MATCH (me:Identifier {type: $type, value: $value})
WHERE me:Matchable
CALL (me) {
  WITH me WHERE me IS NOT NULL
  RETURN me AS m
  UNION
  WITH me WHERE me IS NULL
  MATCH (:Profile {profile_id: $profile_id})<-[:BELONGS_TO]-(m:Matchable)
  WITH m ORDER BY m.type, m.value LIMIT $limit
  RETURN m
}
RETURN m.type AS type, m.value AS value, m.person AS person
