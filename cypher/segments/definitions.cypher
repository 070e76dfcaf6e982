// Every segment's current definition and evaluation state, with its member count.
// Returns name, version, description, rule (JSON text), depends_on, time_dependent,
// updated_at, evaluated_version, evaluated_at (epoch ms or null), member_count.
MATCH (s:Segment)
RETURN
  s.name AS name,
  s.version AS version,
  s.description AS description,
  s.rule AS rule,
  coalesce(s.depends_on, []) AS depends_on,
  coalesce(s.time_dependent, false) AS time_dependent,
  s.updated_at.epochMillis AS updated_at,
  s.evaluated_version AS evaluated_version,
  s.evaluated_at.epochMillis AS evaluated_at,
  COUNT { (s)<-[:IN_SEGMENT]-() } AS member_count
ORDER BY name
