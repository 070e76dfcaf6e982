// Keeps a fitted model that failed its checks, with the reasons, for GetLinkageStatus and
// operators. It is never current: the model that was current stays so.
// $version, $params (JSON), $fitted_at, $pairs, $reasons: [string].
CREATE (m:LinkageModel {version: $version, params: $params, fitted_at: $fitted_at, pairs: $pairs,
                        current: false, refused: true, reasons: $reasons})
RETURN m.version AS version
