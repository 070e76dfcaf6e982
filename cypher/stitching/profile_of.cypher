// The current profile of one identifier (after this transaction's merges).
// $type, $value. Returns profile_id.
MATCH (:Identifier {type: $type, value: $value})-[:BELONGS_TO]->(p:Profile)
RETURN p.profile_id AS profile_id
