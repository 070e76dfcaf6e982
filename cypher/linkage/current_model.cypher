// The current linkage model, if one was fitted. Returns version, params (JSON).
MATCH (m:LinkageModel {current: true})
RETURN m.version AS version, m.params AS params
ORDER BY m.fitted_at DESC
LIMIT 1
