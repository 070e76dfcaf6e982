// Locks profiles (by writing them) before a full evaluation evaluates them, so that two
// evaluations of one profile run one after the other and the second sees the first's edges.
// $profile_ids: [string], sorted (the lock order).
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
SET p.segments_evaluated_at = datetime()
