// Reads what stitching needs to know about the batch's identifiers. They are locked
// already (ingest/record_touchpoints wrote them), so the picture is stable until commit.
// $keys: [{type, value}]; $strong_types: identifier types that name a known person;
// $cap: most neighbours to read.
// Returns type, value, flag, profile_id (null when none), neighbours: [{type, value}],
// unlinked: [{type, value}] (identifiers an operator unlinked from this one).
UNWIND $keys AS key
MATCH (i:Identifier {type: key.type, value: key.value})
OPTIONAL MATCH (i)-[:BELONGS_TO]->(p:Profile)
RETURN
  i.type AS type,
  i.value AS value,
  i.flag AS flag,
  p.profile_id AS profile_id,
  COLLECT {
    MATCH (i)-[:LINKED|REJECTED_LINK]-(n:Identifier)
    WHERE n.type IN $strong_types AND n.type <> i.type AND coalesce(n.flag, '') <> 'blocklisted'
    RETURN DISTINCT {type: n.type, value: n.value}
    LIMIT $cap
  } AS neighbours,
  COLLECT {
    MATCH (i)-[:REJECTED_LINK {by_operator: true}]-(o:Identifier)
    RETURN {type: o.type, value: o.value}
  } AS unlinked
