// How far segment evaluation is behind: profiles marked and waiting, and the oldest mark.
// Returns marked, oldest (epoch ms or null).
MATCH (p:SegmentsDirty)
RETURN count(p) AS marked, min(p.dirty_since).epochMillis AS oldest
