// Keeps each blocklisted junk value as one Identifier node (flagged by stitching), written
// only when first seen: junk shows up in a share of all events, and a node that every batch
// updated would make all batches wait for its lock. Touchpoints keep their junk values in
// their `junk` property, not as CARRIED edges (see ingest/record_carried).
// $rows: [{type, value, first_seen, last_seen (epoch ms)}], sorted.
UNWIND $rows AS row
MERGE (i:Identifier {type: row.type, value: row.value})
  ON CREATE SET i.first_seen = datetime({epochMillis: row.first_seen}),
                i.last_seen = datetime({epochMillis: row.last_seen})
