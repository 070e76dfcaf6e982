// Ends this server's claim on the online fit (linkage/claim_fit) with the attempt's outcome:
// refused attempts in a row, when the next may start (null: whenever one is due), and what
// happened, in words, for GetLinkageStatus.
// $owner; $now, $not_before (epoch ms, or null); $attempts; $outcome.
MATCH (f:LinkageFitting {name: 'online'})
WHERE f.lease_owner = $owner
SET f.lease_owner = null, f.lease_until = null, f.attempts = $attempts, f.outcome = $outcome,
    f.attempted_at = datetime({epochMillis: $now}),
    f.not_before = CASE WHEN $not_before IS NULL THEN null ELSE datetime({epochMillis: $not_before}) END
