// Writes the summary a lookup reads without traversal: golden record, seen range, counts.
// $rows: [{profile_id, golden (JSON text), first_seen, last_seen, touchpoints_online,
//          touchpoints_offline}]
UNWIND $rows AS row
MATCH (p:Profile {profile_id: row.profile_id})
SET
  p.golden = row.golden,
  p.first_seen = row.first_seen,
  p.last_seen = row.last_seen,
  p.touchpoints_online = row.touchpoints_online,
  p.touchpoints_offline = row.touchpoints_offline
