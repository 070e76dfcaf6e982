// Members of a segment that are no longer active (merged away or forgotten) and still hold
// an edge, e.g. because a full evaluation was interrupted.
// $segment; $limit. Returns profile_id.
MATCH (:Segment {name: $segment})<-[:IN_SEGMENT]-(p:Profile)
WHERE NOT coalesce(p.active, false)
RETURN p.profile_id AS profile_id
ORDER BY profile_id
LIMIT $limit
