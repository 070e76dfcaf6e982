// Locks the batch's identifiers and reads what stitching needs to know about them.
// Locking first (SET) means no concurrent transaction can move them between profiles until
// this one commits, so the decisions below rest on a stable picture.
// $keys: [{type, value}] sorted, so that concurrent batches lock in the same order.
// $strong_types: identifier types that name a known person; $cap: most neighbours to read.
// Returns type, value, flag, profile_id (null when none), neighbours: [{type, value}].
UNWIND $keys AS key
MATCH (i:Identifier {type: key.type, value: key.value})
SET i.stitched_at = $now
WITH i
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
  } AS neighbours
