// The next changes of any of the watched segments after a position, in position order: the
// change feed's one poll for every watcher of a server process (served by the unique index
// on position). $segments (names); $after; $limit.
// Returns position, segment, profile_id, kind, at (epoch ms), cause.
MATCH (c:SegmentChange)
WHERE c.position > $after AND c.segment IN $segments
RETURN c.position AS position, c.segment AS segment, c.profile_id AS profile_id, c.kind AS kind,
       c.at.epochMillis AS at, c.cause AS cause
ORDER BY c.position
LIMIT $limit
