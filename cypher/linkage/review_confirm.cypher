// A reviewer confirmed a pair (merge protection let it through, and the profiles are merged
// already by the same transaction): the possible match becomes a confirmed link.
// $a_type, $a_value, $b_type, $b_value (a the lower); $reason; $now.
MATCH (a:Identifier {type: $a_type, value: $a_value})
MATCH (b:Identifier {type: $b_type, value: $b_value})
OPTIONAL MATCH (a)-[possible:POSSIBLE_MATCH]-(b)
WITH a, b, possible, possible.probability AS probability, possible.model_version AS model_version,
     possible.fields AS fields
DELETE possible
MERGE (a)-[l:LINKED]->(b)
  ON CREATE SET l.first_seen = $now, l.times_seen = 0, l.event_ids = []
SET l.kind = 'confirmed', l.by_operator = true, l.reason = $reason, l.last_seen = $now,
    l.times_seen = l.times_seen + 1, l.probability = coalesce(probability, l.probability),
    l.model_version = coalesce(model_version, l.model_version), l.fields = coalesce(fields, l.fields)
