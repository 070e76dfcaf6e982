// Backfill: one page of active profiles with their golden record (JSON text), in profile id
// order, for writing its `trait.<key>` copies (profiles written before segments had none).
// $after: the last profile id of the previous page ('' for the first); $limit.
// Returns profile_id, golden.
MATCH (p:Profile)
WHERE p.profile_id > $after AND p.active = true
RETURN p.profile_id AS profile_id, p.golden AS golden
ORDER BY p.profile_id
LIMIT $limit
