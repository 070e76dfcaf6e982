// Gives up a claim taken by segments/claim_evaluation.
// $segment; $owner.
MATCH (s:Segment {name: $segment})
WHERE s.lease_owner = $owner
SET s.lease_owner = null, s.lease_until = null
