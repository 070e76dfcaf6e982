// Retention: deletes up to $limit changes older than $before (epoch ms), oldest first, and
// remembers the highest deleted position so that a watcher asking for older ones is told.
// Returns deleted.
MATCH (c:SegmentChange)
WHERE c.at < datetime({epochMillis: $before})
WITH c ORDER BY c.position LIMIT $limit
WITH collect(c) AS old, max(c.position) AS last
MATCH (l:SegmentLog {name: 'changes'})
SET l.trimmed_through = CASE WHEN last IS NOT NULL AND last > l.trimmed_through THEN last ELSE l.trimmed_through END
FOREACH (c IN old | DELETE c)
RETURN size(old) AS deleted
