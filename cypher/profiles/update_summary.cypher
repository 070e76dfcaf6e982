// Writes the summary a lookup reads without traversal: golden record, seen range, counts.
// $rows: [{profile_id, golden (JSON text), first_seen, last_seen, touchpoints_online,
//          touchpoints_offline}]; times in epoch milliseconds (or null).
UNWIND $rows AS row
MATCH (p:Profile {profile_id: row.profile_id})
SET
  p.golden = row.golden,
  p.first_seen = CASE WHEN row.first_seen IS NULL THEN null ELSE datetime({epochMillis: row.first_seen}) END,
  p.last_seen = CASE WHEN row.last_seen IS NULL THEN null ELSE datetime({epochMillis: row.last_seen}) END,
  p.touchpoints_online = row.touchpoints_online,
  p.touchpoints_offline = row.touchpoints_offline
