// Puts identifiers into profiles (identifiers that had none, or are moved by a split). The
// profile recomputes its consent from all its statements (consent_split): the moved
// identifiers' statements were read by the profile they belonged to, if any.
// $rows: [{type, value, profile_id}]
UNWIND $rows AS row
MATCH (i:Identifier {type: row.type, value: row.value})
MATCH (p:Profile {profile_id: row.profile_id})
OPTIONAL MATCH (i)-[old:BELONGS_TO]->(:Profile)
DELETE old
CREATE (i)-[:BELONGS_TO]->(p)
SET p.consent_split = true
