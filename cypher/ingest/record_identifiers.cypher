// Creates or updates the identifiers new touchpoints carried, with the range they were seen in.
// Rows come sorted by (type, value): every batch locks identifiers in the same order, so
// concurrent batches wait for each other instead of deadlocking. The locks hold until
// commit, which stitching relies on (no other batch can move them between profiles).
// $rows: [{type, value, first_seen, last_seen (epoch ms)}], one per distinct identifier.
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first_seen}) AS first_seen, datetime({epochMillis: row.last_seen}) AS last_seen
MERGE (i:Identifier {type: row.type, value: row.value})
  ON CREATE SET i.first_seen = first_seen, i.last_seen = last_seen
  ON MATCH SET
    i.first_seen = CASE WHEN first_seen < i.first_seen THEN first_seen ELSE i.first_seen END,
    i.last_seen = CASE WHEN last_seen > i.last_seen THEN last_seen ELSE i.last_seen END
