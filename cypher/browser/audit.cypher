// Neo4j Browser: the audit trail of the last day, newest first: who called which admin
// method on what, with which outcome, and every call refused for a missing, unknown or
// insufficient token (counted per minute). Identifiers appear only as # and their salted hash.
// :param {since: datetime() - duration('P1D')}
MATCH (a:AuditEntry) WHERE a.at >= $since
RETURN a.at AS at, a.caller AS caller, a.method AS method, a.target AS target, a.outcome AS outcome,
       a.detail AS detail, a.peer AS peer, coalesce(a.count, 1) AS calls
ORDER BY a.at DESC
LIMIT 500
