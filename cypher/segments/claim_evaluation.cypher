// Claims a segment's full evaluation for one server for $lease_ms, unless another server
// holds an unexpired claim. Returns claimed (true when this server may run it).
// $segment; $owner; $now, $lease_ms (epoch ms, ms).
MATCH (s:Segment {name: $segment})
SET s.locked_at = datetime({epochMillis: $now})
WITH s, (s.lease_until IS NULL OR s.lease_until.epochMillis < $now OR s.lease_owner = $owner) AS free
FOREACH (_ IN CASE WHEN free THEN [1] ELSE [] END |
  SET s.lease_owner = $owner, s.lease_until = datetime({epochMillis: $now + $lease_ms}))
RETURN free AS claimed
