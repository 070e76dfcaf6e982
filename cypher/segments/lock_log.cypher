// Takes the change log's lock for the rest of the transaction: positions are handed out
// under it, so transactions commit their changes in position order and a reader that has
// seen position N has seen every position before N.
// $now (epoch ms).
MERGE (l:SegmentLog {name: 'changes'})
  ON CREATE SET l.next = 1, l.trimmed_through = 0
SET l.locked_at = datetime({epochMillis: $now})
