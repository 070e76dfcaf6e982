// The change log's next position and the last position retention deleted.
// Returns next, trimmed_through.
OPTIONAL MATCH (l:SegmentLog {name: 'changes'})
RETURN coalesce(l.next, 1) AS next, coalesce(l.trimmed_through, 0) AS trimmed_through
