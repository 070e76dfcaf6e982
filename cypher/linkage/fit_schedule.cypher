// The online worker's fit attempts (linkage/claim_fit): refused ones in a row, when it last
// tried and with what outcome, when it may try next, and until when a server's claim runs
// (it is fitting now). No row before the first attempt. No parameters.
// Returns attempts, attempted_at, not_before, outcome, claimed_until (epoch ms or null).
MATCH (f:LinkageFitting {name: 'online'})
RETURN coalesce(f.attempts, 0) AS attempts, f.attempted_at.epochMillis AS attempted_at,
       f.not_before.epochMillis AS not_before, coalesce(f.outcome, '') AS outcome,
       CASE WHEN f.lease_owner IS NULL THEN null ELSE f.lease_until.epochMillis END AS claimed_until
