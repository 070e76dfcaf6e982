// One page of quarantined items to replay, in id order (stable while a replay updates the
// items that fail again). Filters as in quarantine/list; $after: the last id of the previous
// page ("" for the first); $limit. Returns id, kind, payload (null when it was too large).
MATCH (r:Rejected)
WHERE r.id > $after
  AND ($kind IS NULL OR r.kind = $kind) AND ($codes IS NULL OR r.code IN $codes)
  AND ($source IS NULL OR r.source = $source)
  AND ($since IS NULL OR r.last_rejected_at >= $since) AND ($until IS NULL OR r.last_rejected_at < $until)
RETURN r.id AS id, r.kind AS kind, r.payload AS payload
ORDER BY r.id
LIMIT $limit
