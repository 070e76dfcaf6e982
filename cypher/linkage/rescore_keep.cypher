// Probabilistic links the current model still accepts keep their link with its evidence.
// $rows: [{a_type, a_value, b_type, b_value, probability, model_version, fields (JSON)}].
UNWIND $rows AS row
MATCH (:Identifier {type: row.a_type, value: row.a_value})-[l:LINKED {kind: 'probabilistic'}]->
      (:Identifier {type: row.b_type, value: row.b_value})
SET l.probability = row.probability, l.model_version = row.model_version, l.fields = row.fields
