// Candidate pairs for linkage: for each subject, the Matchable identifiers that share one of
// its blocking keys (at most $cap per key, so an oversized block cannot flood a subject),
// with both sides' profiles, and whether a reviewer or operator refused the pair.
// $subjects: [{type, value, blocks: [6 keys or nulls]}]; $cap.
// Returns type, value, profile_id (of the subject), candidates: [{type, value, person,
// profile_id, refused}].
UNWIND $subjects AS s
MATCH (me:Identifier {type: s.type, value: s.value})
OPTIONAL MATCH (me)-[:BELONGS_TO]->(mine:Profile)
CALL (s, me) {
  CALL (s) {
    MATCH (c:Matchable {block_0: s.blocks[0]}) RETURN c LIMIT $cap
    UNION
    MATCH (c:Matchable {block_1: s.blocks[1]}) RETURN c LIMIT $cap
    UNION
    MATCH (c:Matchable {block_2: s.blocks[2]}) RETURN c LIMIT $cap
    UNION
    MATCH (c:Matchable {block_3: s.blocks[3]}) RETURN c LIMIT $cap
    UNION
    MATCH (c:Matchable {block_4: s.blocks[4]}) RETURN c LIMIT $cap
    UNION
    MATCH (c:Matchable {block_5: s.blocks[5]}) RETURN c LIMIT $cap
  }
  WITH me, c WHERE c <> me
  OPTIONAL MATCH (c)-[:BELONGS_TO]->(theirs:Profile)
  RETURN collect({type: c.type, value: c.value, person: c.person, profile_id: theirs.profile_id,
                  refused: EXISTS { (me)-[:REJECTED_LINK {by_operator: true}]-(c) }}) AS candidates
}
RETURN me.type AS type, me.value AS value, me.person AS person, mine.profile_id AS profile_id, candidates
