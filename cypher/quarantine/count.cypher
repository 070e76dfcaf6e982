// How many quarantined items a replay will look at. Filters as in quarantine/list.
MATCH (r:Rejected)
WHERE ($kind IS NULL OR r.kind = $kind) AND ($codes IS NULL OR r.code IN $codes)
  AND ($source IS NULL OR r.source = $source)
  AND ($since IS NULL OR r.last_rejected_at >= $since) AND ($until IS NULL OR r.last_rejected_at < $until)
RETURN count(r) AS items
