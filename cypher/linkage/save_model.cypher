// Stores a fitted linkage model and makes it the current one; earlier versions stay, so
// every link keeps pointing at the model that made it.
// $version, $params (JSON), $fitted_at, $pairs.
MATCH (old:LinkageModel {current: true})
SET old.current = false
WITH count(old) AS retired
CREATE (m:LinkageModel {version: $version, params: $params, fitted_at: $fitted_at, pairs: $pairs,
                        current: true})
RETURN m.version AS version
