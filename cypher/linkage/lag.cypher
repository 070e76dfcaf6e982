// How far online linkage is behind: identifiers waiting, and the oldest one's wait start.
// Returns pending, oldest (epoch ms or null).
MATCH (m:LinkPending)
RETURN count(m) AS pending, min(m.pending_since).epochMillis AS oldest
