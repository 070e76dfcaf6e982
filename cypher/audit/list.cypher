// The audit trail, newest first.
// $since, $until (epoch ms, either null: open); $caller, $method (null or "": any; the method
// matches its last part, e.g. ForgetProfile, or the whole name); $limit.
MATCH (a:AuditEntry)
WHERE ($since IS NULL OR a.at >= datetime({epochMillis: $since}))
  AND ($until IS NULL OR a.at < datetime({epochMillis: $until}))
  AND (coalesce($caller, '') = '' OR a.caller = $caller)
  AND (coalesce($method, '') = '' OR a.method = $method OR a.method ENDS WITH '/' + $method)
RETURN a.at.epochMillis AS at, a.caller AS caller, a.method AS method, a.target AS target,
       a.outcome AS outcome, a.detail AS detail, a.peer AS peer, coalesce(a.count, 1) AS count
ORDER BY a.at DESC
LIMIT $limit
