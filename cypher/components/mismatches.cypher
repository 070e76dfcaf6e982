// Where the stored profiles disagree with the recomputed components.
// $scope: only identifiers whose value contains it ('' for all); $limit: most rows. Returns problem, subject (profile ids or an identifier),
// where problem is 'split' (a profile spans components), 'merge' (a component spans
// profiles) or 'orphan' (an identifier that is not blocklisted has no active profile).
CALL () {
  MATCH (p:Profile {active: true})<-[:BELONGS_TO]-(i:Identifier)
  WHERE i.value CONTAINS $scope
  WITH p, count(DISTINCT i.component) AS components
  WHERE components > 1
  RETURN 'split' AS problem, [p.profile_id] AS subject
  UNION ALL
  MATCH (i:Identifier)-[:BELONGS_TO]->(p:Profile)
  WHERE i.value CONTAINS $scope
  WITH i.component AS component, collect(DISTINCT p.profile_id) AS profiles
  WHERE size(profiles) > 1
  RETURN 'merge' AS problem, profiles AS subject
  UNION ALL
  MATCH (i:Identifier)
  WHERE i.value CONTAINS $scope AND coalesce(i.flag, '') <> 'blocklisted' AND NOT (i)-[:BELONGS_TO]->(:Profile {active: true})
  RETURN 'orphan' AS problem, [i.type, i.value] AS subject
}
RETURN problem, subject
LIMIT $limit
