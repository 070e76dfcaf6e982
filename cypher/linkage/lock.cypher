// Write-locks the identifiers a linkage transaction is about to link, in the order given
// (sorted by the caller, as ingest does), so that concurrent ingest and linkage batches
// wait for each other instead of deadlocking or moving an identifier under the other.
// $keys: [{type, value}] sorted; $now.
UNWIND $keys AS key
MATCH (i:Identifier {type: key.type, value: key.value})
SET i.linked_at = $now
