// Records possible matches: pairs the model scored between its two thresholds, or above them
// but stopped by a decision guard (its reason in `guard`). They do not merge profiles
// (components ignore POSSIBLE_MATCH) and wait for a reviewer (ReviewMatch).
// $rows: [{a_type, a_value, b_type, b_value, probability, model_version, fields (JSON), guard}]; $now.
UNWIND $rows AS row
MATCH (a:Identifier {type: row.a_type, value: row.a_value})
MATCH (b:Identifier {type: row.b_type, value: row.b_value})
WHERE NOT (a)-[:LINKED]-(b)
MERGE (a)-[m:POSSIBLE_MATCH]->(b)
  ON CREATE SET m.first_seen = $now
SET m.last_seen = $now, m.probability = row.probability, m.model_version = row.model_version,
    m.fields = row.fields, m.guard = row.guard
