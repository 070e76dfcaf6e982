// Writes the summary a lookup reads without traversal: golden record, seen range, counts,
// and marks the profiles for segment re-evaluation (SegmentsDirty; the first cause since
// the last evaluation is kept).
// The golden record is kept twice: as JSON text with each value's source and time (for
// lookups) and as one property `trait.<key>` per trait, which segment rules compare
// (traits no longer in the record are removed).
// $rows: [{profile_id, golden (JSON text), traits: {`trait.<key>`: value}, first_seen,
//          last_seen, touchpoints_online, touchpoints_offline}]; times in epoch
//          milliseconds (or null). $cause: why the profiles changed (ingest, linkage, unlink).
UNWIND $rows AS row
MATCH (p:Profile {profile_id: row.profile_id})
FOREACH (key IN [k IN keys(p) WHERE k STARTS WITH 'trait.' AND NOT k IN keys(row.traits)] | SET p[key] = null)
SET
  p += row.traits,
  p.golden = row.golden,
  p.first_seen = CASE WHEN row.first_seen IS NULL THEN null ELSE datetime({epochMillis: row.first_seen}) END,
  p.last_seen = CASE WHEN row.last_seen IS NULL THEN null ELSE datetime({epochMillis: row.last_seen}) END,
  p.touchpoints_online = row.touchpoints_online,
  p.touchpoints_offline = row.touchpoints_offline,
  p:SegmentsDirty,
  p.dirty_since = coalesce(p.dirty_since, datetime()),
  p.dirty_cause = coalesce(p.dirty_cause, $cause)
