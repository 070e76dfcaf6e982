// Appends entries to the audit trail: admin calls with their outcome, and refused calls.
// $entries: [{id, at (epoch µs), caller, method, target, outcome, detail, peer}]; identifiers
// in target and detail are already salted hashes (server/api/auth.py).
UNWIND $entries AS e
CREATE (:AuditEntry {
  id: e.id,
  at: datetime({epochSeconds: e.at / 1000000, nanosecond: e.at % 1000000 * 1000}),
  caller: e.caller,
  method: e.method,
  target: e.target,
  outcome: e.outcome,
  detail: e.detail,
  peer: e.peer
})
