// Candidate pairs for linkage: for each subject, the Matchable identifiers that share one of
// its blocking keys. A block larger than the cap gives the $half nearest by name on either
// side (sorted neighbourhood, served by the composite indexes), so pairs per record stay
// bounded and the likeliest ones are kept. Returns both sides' profiles, and whether a
// reviewer or operator refused the pair.
// $subjects: [{type, value, blocks: [7 keys or nulls], name_key}]; $half.
// Returns type, value, person, profile_id (of the subject), candidates: [{type, value,
// person, profile_id, refused}].
UNWIND $subjects AS s
MATCH (me:Identifier {type: s.type, value: s.value})
OPTIONAL MATCH (me)-[:BELONGS_TO]->(mine:Profile)
CALL (s, me) {
  CALL (s) {
    MATCH (c:Matchable) WHERE c.block_0 = s.blocks[0] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_0 = s.blocks[0] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_1 = s.blocks[1] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_1 = s.blocks[1] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_2 = s.blocks[2] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_2 = s.blocks[2] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_3 = s.blocks[3] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_3 = s.blocks[3] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_4 = s.blocks[4] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_4 = s.blocks[4] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_5 = s.blocks[5] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_5 = s.blocks[5] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_6 = s.blocks[6] AND c.name_key <= s.name_key
    RETURN c ORDER BY c.name_key DESC LIMIT $half
    UNION
    MATCH (c:Matchable) WHERE c.block_6 = s.blocks[6] AND c.name_key > s.name_key
    RETURN c ORDER BY c.name_key LIMIT $half
  }
  WITH me, c WHERE c <> me
  OPTIONAL MATCH (c)-[:BELONGS_TO]->(theirs:Profile)
  RETURN collect({type: c.type, value: c.value, person: c.person, profile_id: theirs.profile_id,
                  refused: EXISTS { (me)-[:REJECTED_LINK {by_operator: true}]-(c) }}) AS candidates
}
RETURN me.type AS type, me.value AS value, me.person AS person, mine.profile_id AS profile_id, candidates
