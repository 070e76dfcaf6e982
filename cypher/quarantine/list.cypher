// One page of quarantined items, newest rejection first, for ListRejected.
// Filters (null: any): $kind, $codes, $source, $since, $until (on the last rejection).
// Cursor: $after_at, $after_id (the last item of the previous page; null for the first).
// $limit. Returns id, kind, code, reason, source, subject_id, first_rejected_at,
// last_rejected_at, attempts, payload.
MATCH (r:Rejected)
WHERE ($kind IS NULL OR r.kind = $kind) AND ($codes IS NULL OR r.code IN $codes)
  AND ($source IS NULL OR r.source = $source)
  AND ($since IS NULL OR r.last_rejected_at >= $since) AND ($until IS NULL OR r.last_rejected_at < $until)
  AND ($after_at IS NULL OR r.last_rejected_at < $after_at
       OR (r.last_rejected_at = $after_at AND r.id > $after_id))
RETURN r.id AS id, r.kind AS kind, r.code AS code, r.reason AS reason, r.source AS source,
       r.subject_id AS subject_id, r.first_rejected_at AS first_rejected_at,
       r.last_rejected_at AS last_rejected_at, r.attempts AS attempts, r.payload AS payload
ORDER BY r.last_rejected_at DESC, r.id
LIMIT $limit
