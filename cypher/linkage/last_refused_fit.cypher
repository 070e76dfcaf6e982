// The most recent refused fit, when it is newer than the current model (or there is none).
// Returns version, params (JSON), reasons.
MATCH (r:LinkageModel {refused: true})
WITH r ORDER BY r.fitted_at DESC LIMIT 1
OPTIONAL MATCH (c:LinkageModel {current: true})
WITH r, max(c.fitted_at) AS current_at
WHERE current_at IS NULL OR r.fitted_at > current_at
RETURN r.version AS version, r.params AS params, r.reasons AS reasons
