// Records that profiles were split off another one, and why.
// $rows: [{profile_id, original}]; $reason; $now.
UNWIND $rows AS row
MATCH (part:Profile {profile_id: row.profile_id})
MATCH (original:Profile {profile_id: row.original})
CREATE (part)-[:SPLIT_FROM {at: $now, reason: $reason}]->(original)
