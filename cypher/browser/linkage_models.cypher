// Neo4j Browser: the linkage models, newest first: which is current, which fits were refused
// and why. A refused fit never became current; its parameters are in params (JSON).
MATCH (m:LinkageModel)
RETURN m.version AS version, m.fitted_at AS fitted_at, m.current AS current,
       coalesce(m.refused, false) AS refused, m.reasons AS reasons, m.pairs AS pairs
ORDER BY m.fitted_at DESC
LIMIT 20
