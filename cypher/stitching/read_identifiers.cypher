// Reads what stitching needs to know about identifiers, without locks: ExplainLink plans in a
// read transaction (a commit reads the same under locks with stitching/read_state). A
// flagged identifier links nothing, so its neighbours are not read.
// $keys: [{type, value}]; $strong_types: identifier types that name a known person;
// $cap: most neighbours to read.
// Returns type, value, flag, profile_id (null when none), neighbours: [{type, value}],
// unlinked: [{type, value}] (identifiers an operator unlinked from this one).
UNWIND $keys AS key
MATCH (i:Identifier {type: key.type, value: key.value})
OPTIONAL MATCH (i)-[:BELONGS_TO]->(p:Profile)
WITH i, p.profile_id AS profile_id, i.flag AS flag
RETURN
  i.type AS type,
  i.value AS value,
  flag,
  profile_id,
  COLLECT {
    MATCH (i)-[:LINKED|REJECTED_LINK]-(n:Identifier)
    WHERE flag IS NULL AND n.type IN $strong_types AND n.type <> i.type AND coalesce(n.flag, '') <> 'blocklisted'
    RETURN DISTINCT {type: n.type, value: n.value}
    LIMIT $cap
  } AS neighbours,
  COLLECT {
    MATCH (i)-[:REJECTED_LINK {by_operator: true}]-(o:Identifier)
    WHERE flag IS NULL
    RETURN {type: o.type, value: o.value}
  } AS unlinked
