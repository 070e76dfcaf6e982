// One page of quarantined items, newest rejection first, for ListRejected.
// Filters (null: any): $kind, $codes, $source, $until (exclusive); $since is always set
// (the epoch when not filtered) and $upper too (the cursor's time, or until, or far in the
// future), so that the index on last_rejected_at serves both the range and the order.
// Cursor: $after_id, the id of the last item of the previous page (null for the first),
// whose time is $upper. $limit. Returns id, kind, code, reason, source, subject_id,
// first_rejected_at, last_rejected_at, attempts, payload.
MATCH (r:Rejected)
WHERE r.last_rejected_at >= $since AND r.last_rejected_at <= $upper
  AND ($until IS NULL OR r.last_rejected_at < $until)
  AND ($after_id IS NULL OR r.last_rejected_at < $upper OR r.id > $after_id)
  AND ($kind IS NULL OR r.kind = $kind) AND ($codes IS NULL OR r.code IN $codes)
  AND ($source IS NULL OR r.source = $source)
RETURN r.id AS id, r.kind AS kind, r.code AS code, r.reason AS reason, r.source AS source,
       r.subject_id AS subject_id, r.first_rejected_at AS first_rejected_at,
       r.last_rejected_at AS last_rejected_at, r.attempts AS attempts, r.payload AS payload
ORDER BY r.last_rejected_at DESC, r.id
LIMIT $limit
