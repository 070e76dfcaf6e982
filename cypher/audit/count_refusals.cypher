// Refused calls, counted rather than itemised: one entry per minute, caller, method and
// outcome, however many refusals it stands for, so that a flood of bad tokens adds at most a
// bounded number of nodes a minute. The first refusal's detail and peer are kept.
// $refusals: [{id, minute (epoch ms), caller, method, outcome, detail, peer, count}].
UNWIND $refusals AS r
MERGE (a:AuditEntry {refusal_key: r.caller + '|' + r.method + '|' + r.outcome + '|' + toString(r.minute)})
  ON CREATE SET a.id = r.id, a.at = datetime({epochMillis: r.minute}), a.caller = r.caller, a.method = r.method,
                a.target = '', a.outcome = r.outcome, a.detail = r.detail, a.peer = r.peer, a.count = r.count
  ON MATCH SET a.count = a.count + r.count
