// Creates new, active profiles.
// $profile_ids: [string]; $now.
UNWIND $profile_ids AS profile_id
CREATE (:Profile {profile_id: profile_id, active: true, created_at: $now})
