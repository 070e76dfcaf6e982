// The oldest identifiers waiting for online linkage. $limit.
// Returns type, value, blocks, name_key, pending_since (epoch ms).
MATCH (m:LinkPending)
WHERE m.pending_since IS NOT NULL
WITH m ORDER BY m.pending_since LIMIT $limit
RETURN m.type AS type, m.value AS value,
       [m.block_0, m.block_1, m.block_2, m.block_3, m.block_4, m.block_5, m.block_6] AS blocks,
       m.name_key AS name_key,
       m.pending_since.epochMillis AS pending_since
