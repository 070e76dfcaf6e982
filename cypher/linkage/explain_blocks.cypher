// ExplainLink, blocking: how many Matchable identifiers hold each of a pair's shared blocking
// keys, so that a block larger than max_block_size (where the candidate query keeps only the
// nearest by name) can be named. One index seek per slot. Read-only.
// $blocks: [7 keys or nulls] (slot n is the key of the n-th configured pass).
// Returns sizes: [7 counts] (0 for a null key).
RETURN [
  COUNT { MATCH (c:Matchable) WHERE c.block_0 = $blocks[0] },
  COUNT { MATCH (c:Matchable) WHERE c.block_1 = $blocks[1] },
  COUNT { MATCH (c:Matchable) WHERE c.block_2 = $blocks[2] },
  COUNT { MATCH (c:Matchable) WHERE c.block_3 = $blocks[3] },
  COUNT { MATCH (c:Matchable) WHERE c.block_4 = $blocks[4] },
  COUNT { MATCH (c:Matchable) WHERE c.block_5 = $blocks[5] },
  COUNT { MATCH (c:Matchable) WHERE c.block_6 = $blocks[6] }
] AS sizes
