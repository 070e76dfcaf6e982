// Undoes probabilistic links the current model no longer accepts. One that it scores in the
// review band (or above, stopped by a decision guard) becomes a possible match; one below the
// lower threshold leaves no edge (the profile's split records why). Both sides wait for online
// linkage again, so that the current model links them where they belong.
// $rows: [{a_type, a_value, b_type, b_value, review (bool), probability, model_version,
//          fields (JSON), guard}]; $now. Returns profile_id: the profiles that may now split.
UNWIND $rows AS row
MATCH (a:Identifier {type: row.a_type, value: row.a_value})-[l:LINKED {kind: 'probabilistic'}]->
      (b:Identifier {type: row.b_type, value: row.b_value})
DELETE l
FOREACH (_ IN CASE WHEN row.review THEN [1] ELSE [] END |
  MERGE (a)-[m:POSSIBLE_MATCH]->(b)
    ON CREATE SET m.first_seen = $now
  SET m.last_seen = $now, m.probability = row.probability, m.model_version = row.model_version,
      m.fields = row.fields, m.guard = row.guard)
SET a:LinkPending, a.pending_since = $now, b:LinkPending, b.pending_since = $now
WITH a
MATCH (a)-[:BELONGS_TO]->(p:Profile)
RETURN DISTINCT p.profile_id AS profile_id
