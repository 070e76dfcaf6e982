// Flags identifiers that must link no more (blocklisted junk, shared devices).
// $rows: [{type, value, flag, reason}]; $now.
UNWIND $rows AS row
MATCH (i:Identifier {type: row.type, value: row.value})
SET i.flag = row.flag, i.flag_reason = row.reason, i.flagged_at = $now
