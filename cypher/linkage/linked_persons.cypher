// The person attributes of both sides of probabilistic links that still exist, for re-scoring.
// $rows: [{a_type, a_value, b_type, b_value}]. Returns a_type, a_value, b_type, b_value,
// a_person, b_person (JSON).
UNWIND $rows AS row
MATCH (a:Identifier {type: row.a_type, value: row.a_value})-[:LINKED {kind: 'probabilistic'}]->
      (b:Identifier {type: row.b_type, value: row.b_value})
WHERE a.person IS NOT NULL AND b.person IS NOT NULL
RETURN a.type AS a_type, a.value AS a_value, b.type AS b_type, b.value AS b_value,
       a.person AS a_person, b.person AS b_person
