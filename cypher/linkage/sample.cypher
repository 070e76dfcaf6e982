// A random sample of Matchable identifiers, to fit the model on: their candidate pairs feed
// m, random pairs among them feed u. $share (0..1), $limit.
// Returns type, value, person (JSON; null only for a record deleted while it was read: a
// forgotten person), blocks, name_key.
MATCH (m:Matchable)
WHERE rand() < $share AND m.person IS NOT NULL
RETURN m.type AS type, m.value AS value, m.person AS person,
       [m.block_0, m.block_1, m.block_2, m.block_3, m.block_4, m.block_5, m.block_6] AS blocks,
       m.name_key AS name_key
LIMIT $limit
