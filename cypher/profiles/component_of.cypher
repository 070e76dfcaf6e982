// The identifiers of one profile and the links that hold it together, for splitting it.
// Links touching a flagged identifier do not count: flagged identifiers link no more.
// $profile_id. Returns type, value, flag, links: [{type, value}].
MATCH (p:Profile {profile_id: $profile_id})<-[:BELONGS_TO]-(i:Identifier)
SET p.touched_at = datetime()
RETURN
  i.type AS type,
  i.value AS value,
  i.flag AS flag,
  COLLECT {
    MATCH (i)-[:LINKED]-(j:Identifier)-[:BELONGS_TO]->(p)
    WHERE i.flag IS NULL AND j.flag IS NULL
    RETURN {type: j.type, value: j.value}
  } AS links
