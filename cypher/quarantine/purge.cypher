// Deletes up to $limit quarantined items last rejected before $cutoff (the retention
// setting). Returns purged: how many.
MATCH (r:Rejected)
WHERE r.last_rejected_at < $cutoff
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS purged
