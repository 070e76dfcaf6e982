// One page of active profiles in profile id order, for a full evaluation.
// $after: the last profile id of the previous page ('' for the first); $limit.
// Returns profile_id.
MATCH (p:Profile)
WHERE p.profile_id > $after AND p.active = true
RETURN p.profile_id AS profile_id
ORDER BY p.profile_id
LIMIT $limit
