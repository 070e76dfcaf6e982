// Keeps rejected events and records in quarantine; a redelivered or replayed reject updates
// its node (same id) and counts the attempt. A reject that carries an identifier of a
// forgotten person is not kept at all (it could only be refused again).
// $rows: [{id, kind, subject_id, source, code, reason, payload (JSON text or null when too
//          large), hashes: [salted hashes of its identifiers]}], sorted by id; $now.
UNWIND $rows AS row
WITH row WHERE NOT EXISTS { MATCH (s:Suppressed) WHERE s.hash IN row.hashes }
MERGE (r:Rejected {id: row.id})
  ON CREATE SET r.kind = row.kind, r.subject_id = row.subject_id, r.source = row.source,
                r.payload = row.payload, r.hashes = row.hashes, r.first_rejected_at = $now,
                r.attempts = 0
SET r.code = row.code, r.reason = row.reason, r.last_rejected_at = $now, r.attempts = r.attempts + 1
