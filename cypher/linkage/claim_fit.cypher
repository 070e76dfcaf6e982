// Claims the online worker's fit of a linkage model for one server for $lease_ms, unless
// another server holds an unexpired claim, or a refused attempt's back-off (not_before) has not
// passed. A model made current since the last attempt (by an import or RefitLinkageModel)
// starts the back-off over. Returns claimed, attempts (refused attempts in a row so far).
// $owner; $now, $lease_ms (epoch ms, ms).
MERGE (f:LinkageFitting {name: 'online'})
SET f.locked_at = datetime({epochMillis: $now})
WITH f
OPTIONAL MATCH (c:LinkageModel {current: true})
WITH f, max(c.fitted_at) AS current_at
WITH f, current_at IS NOT NULL AND f.attempted_at IS NOT NULL AND current_at > f.attempted_at AS renewed
WITH f, CASE WHEN renewed THEN 0 ELSE coalesce(f.attempts, 0) END AS attempts,
     (f.lease_until IS NULL OR f.lease_until.epochMillis < $now OR f.lease_owner = $owner)
     AND (renewed OR f.not_before IS NULL OR f.not_before.epochMillis <= $now) AS free
FOREACH (_ IN CASE WHEN free THEN [1] ELSE [] END |
  SET f.lease_owner = $owner, f.lease_until = datetime({epochMillis: $now + $lease_ms}), f.attempts = attempts)
RETURN free AS claimed, attempts
