// The blocking keys of identifiers about to be linked (Matchable ones only).
// $keys: [{type, value}]. Returns type, value, blocks, name_key.
UNWIND $keys AS key
MATCH (m:Identifier {type: key.type, value: key.value})  // the unique index; Matchable has none on these
WHERE m:Matchable
RETURN m.type AS type, m.value AS value,
       [m.block_0, m.block_1, m.block_2, m.block_3, m.block_4, m.block_5, m.block_6] AS blocks,
       m.name_key AS name_key
