// Takes the profiles that ingest, linkage, merges, unlinks and forgets marked for segment
// re-evaluation, oldest first, and locks them (by writing them) for the rest of the
// transaction, so that a concurrent change waits and marks them again afterwards.
// $limit. Returns profile_id, cause (the first cause since the last evaluation), since
// (epoch ms: when the profile was first marked).
MATCH (p:SegmentsDirty)
WHERE p.dirty_since IS NOT NULL
WITH p ORDER BY p.dirty_since LIMIT $limit
// locked in profile id order, the order ingest locks profiles in, so the two never deadlock
WITH p ORDER BY p.profile_id
WITH p, p.dirty_cause AS cause, p.dirty_since.epochMillis AS since
REMOVE p:SegmentsDirty
SET p.dirty_since = null, p.dirty_cause = null, p.segments_evaluated_at = datetime()
RETURN p.profile_id AS profile_id, cause, since
