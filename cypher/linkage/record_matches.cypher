// Records probabilistic links the model accepted and merge protection let through, with
// the model's evidence: version, match probability and each field's level and weight.
// One LINKED edge per pair (lower (type, value) to higher); a pair linked already keeps
// the edge it has. A possible match the pair had becomes this link.
// $rows: [{a_type, a_value, b_type, b_value, probability, model_version, fields (JSON),
//          reason}]; $now.
UNWIND $rows AS row
MATCH (a:Identifier {type: row.a_type, value: row.a_value})
MATCH (b:Identifier {type: row.b_type, value: row.b_value})
OPTIONAL MATCH (a)-[possible:POSSIBLE_MATCH]-(b)
DELETE possible
MERGE (a)-[l:LINKED]->(b)
  ON CREATE SET l.kind = 'probabilistic', l.first_seen = $now, l.last_seen = $now, l.times_seen = 1,
                l.event_ids = [], l.probability = row.probability, l.model_version = row.model_version,
                l.fields = row.fields, l.reason = row.reason
