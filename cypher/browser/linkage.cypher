// Neo4j Browser: probabilistic links and possible matches waiting for review, with the
// model's evidence (version, match probability, per-field levels and weights as JSON) and,
// for a possible match scored above the upper threshold, the decision guard that stopped it.
// Shows the pairs as a graph; switch to Table for the evidence.
// $min_probability, e.g. :param {min_probability: 0.5}
MATCH (a:Identifier)-[l:LINKED|POSSIBLE_MATCH]->(b:Identifier)
WHERE (type(l) = 'POSSIBLE_MATCH' OR l.kind IN ['probabilistic', 'confirmed'])
  AND coalesce(l.probability, 1.0) >= $min_probability
RETURN a, l, b, type(l) AS kind, l.probability AS probability, l.model_version AS model,
       l.guard AS stopped_by_guard, l.fields AS fields
ORDER BY l.probability DESC
LIMIT 200
