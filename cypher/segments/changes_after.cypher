// The next changes of a segment after a position, in position order.
// $segment; $after; $limit. Returns position, profile_id, kind, at (epoch ms), cause.
MATCH (c:SegmentChange)
WHERE c.segment = $segment AND c.position > $after
RETURN c.position AS position, c.profile_id AS profile_id, c.kind AS kind,
       c.at.epochMillis AS at, c.cause AS cause
ORDER BY c.position
LIMIT $limit
