// Known matches for fitting: Matchable identifiers in the profile of each given one, joined to
// it by at most three deterministic links (identifiers seen together: the same e-mail, phone
// or CRM id), never through a probabilistic or confirmed link, so that a model does not learn
// from its own decisions. $keys: [{type, value}] (sampled Matchable identifiers); $limit.
// Returns a_type, a_value, a_person, b_type, b_value, b_person (JSON).
UNWIND $keys AS key
MATCH (a:Identifier {type: key.type, value: key.value})-[:BELONGS_TO]->(p:Profile)
WHERE a:Matchable
MATCH (a) (()-[l:LINKED WHERE l.kind IS NULL]-()){1,3} (b:Matchable)
WHERE b <> a AND (b)-[:BELONGS_TO]->(p)
WITH DISTINCT a, b
RETURN a.type AS a_type, a.value AS a_value, a.person AS a_person,
       b.type AS b_type, b.value AS b_value, b.person AS b_person
LIMIT $limit
