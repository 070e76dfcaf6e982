// Appends entries to the audit trail: admin calls with their outcome, and refused calls.
// $entries: [{id, at (epoch ms), caller, method, target, outcome, detail, peer}]; identifiers
// in target and detail are already salted hashes (server/api/auth.py).
UNWIND $entries AS e
CREATE (:AuditEntry {
  id: e.id,
  at: datetime({epochMillis: e.at}),
  caller: e.caller,
  method: e.method,
  target: e.target,
  outcome: e.outcome,
  detail: e.detail,
  peer: e.peer
})
