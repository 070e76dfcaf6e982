// Browser: the most recent touchpoints that kept invalid values (malformed or unknown
// identifiers), with the profile each belongs to. Click a touchpoint to read its `invalid`
// property: each value with the reason it could not be used.
MATCH (t:HasInvalid)
OPTIONAL MATCH (t)-[:CARRIED {primary: true}]->(:Identifier)-[:BELONGS_TO]->(p:Profile)
RETURN t, p
ORDER BY t.occurred_at DESC
LIMIT 50
