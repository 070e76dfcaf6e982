// Every probabilistic link (not the ones a reviewer confirmed), for re-scoring under the
// current model. Returns a_type, a_value, b_type, b_value (the edge's start and end).
MATCH (a:Identifier)-[l:LINKED {kind: 'probabilistic'}]->(b:Identifier)
RETURN a.type AS a_type, a.value AS a_value, b.type AS b_type, b.value AS b_value
ORDER BY a_type, a_value, b_type, b_value
