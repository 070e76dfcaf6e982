// Gives identifiers the person attributes linkage compares (cleaned, as JSON) and their
// blocking keys, one slot per blocking pass (null where a pass has no key). Pending ones
// wait for the online linkage worker; an import links its records itself.
// $rows: [{type, value, person (JSON text), blocks: [7 keys or nulls], name_key}]; $pending; $now.
UNWIND $rows AS row
MATCH (i:Identifier {type: row.type, value: row.value})
SET i:Matchable,
    i.person = row.person,
    i.block_0 = row.blocks[0], i.block_1 = row.blocks[1], i.block_2 = row.blocks[2],
    i.block_3 = row.blocks[3], i.block_4 = row.blocks[4], i.block_5 = row.blocks[5],
    i.block_6 = row.blocks[6],
    i.name_key = row.name_key, i.described_at = $now
FOREACH (_ IN CASE WHEN $pending THEN [1] ELSE [] END |
  SET i:LinkPending, i.pending_since = $now)
