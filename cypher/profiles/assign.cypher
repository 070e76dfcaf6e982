// Puts identifiers into profiles (identifiers that had none, or are moved by a split).
// $rows: [{type, value, profile_id}]
UNWIND $rows AS row
MATCH (i:Identifier {type: row.type, value: row.value})
MATCH (p:Profile {profile_id: row.profile_id})
OPTIONAL MATCH (i)-[old:BELONGS_TO]->(:Profile)
DELETE old
CREATE (i)-[:BELONGS_TO]->(p)
