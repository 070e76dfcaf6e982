// Backfill: writes profiles' `trait.<key>` copies of their golden record and marks those that
// changed for segment re-evaluation. $rows: [{profile_id, traits: {`trait.<key>`: value}}].
// Returns updated (how many profiles gained or changed a trait property).
UNWIND $rows AS row
MATCH (p:Profile {profile_id: row.profile_id})
WITH p, row, any(k IN keys(row.traits) WHERE p[k] IS NULL OR p[k] <> row.traits[k]) AS stale
WHERE stale
SET p += row.traits,
    p:SegmentsDirty, p.dirty_since = coalesce(p.dirty_since, datetime()),
    p.dirty_cause = coalesce(p.dirty_cause, 'backfill')
RETURN count(p) AS updated
