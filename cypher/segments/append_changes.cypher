// Appends membership changes to the log with the next positions (after segments/lock_log
// in the same transaction). $changes: [{segment, profile_id, kind ('enter'|'exit'), cause}];
// $now (epoch ms). Returns position, segment, profile_id, kind.
MATCH (l:SegmentLog {name: 'changes'})
WITH l, l.next AS first
SET l.next = first + size($changes)
WITH first
UNWIND range(0, size($changes) - 1) AS n
WITH first + n AS position, $changes[n] AS change
CREATE (c:SegmentChange {
  position: position, segment: change.segment, profile_id: change.profile_id,
  kind: change.kind, cause: change.cause, at: datetime({epochMillis: $now})
})
RETURN c.position AS position, c.segment AS segment, c.profile_id AS profile_id, c.kind AS kind
