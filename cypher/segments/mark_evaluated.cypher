// Records that a full evaluation of a segment's version finished, unless the segment has
// moved on to a newer version meanwhile.
// $segment; $version; $now (epoch ms).
MATCH (s:Segment {name: $segment})
WHERE s.version = $version
SET s.evaluated_version = $version, s.evaluated_at = datetime({epochMillis: $now})
