// Neo4j Browser: the audit trail of the last day, newest first: who called which admin
// method on what, with which outcome, and every call refused for a missing, unknown or
// insufficient token. ForgetProfile names a forgotten identifier by its salted hash only.
// :param {since: datetime() - duration('P1D')}
MATCH (a:AuditEntry) WHERE a.at >= $since
RETURN a.at AS at, a.caller AS caller, a.method AS method, a.target AS target, a.outcome AS outcome,
       a.detail AS detail, a.peer AS peer
ORDER BY a.at DESC
LIMIT 500
