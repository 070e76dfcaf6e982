// Records that profiles were split off another one, and why. Every part recomputes its
// consent from its own statements (consent_split, read by consent/of_profiles).
// $rows: [{profile_id, original}]; $reason; $now.
UNWIND $rows AS row
MATCH (part:Profile {profile_id: row.profile_id})
MATCH (original:Profile {profile_id: row.original})
CREATE (part)-[:SPLIT_FROM {at: $now, reason: $reason}]->(original)
SET part.consent_split = true, original.consent_split = true
