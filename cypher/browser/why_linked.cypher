// Neo4j Browser: why two identifiers are in one profile, or why not: the profile each belongs
// to, the shortest chain of accepted links (LINKED) joining them through unflagged identifiers
// (a flagged one, blocklisted or shared, links no more), and what stands between their profiles:
// links merge protection refused (REJECTED_LINK, with reason) and possible matches waiting for
// review (POSSIBLE_MATCH). No chain and a refusal: merge protection kept them apart.
// :param {a_type: 'email', a_value: 'ann@example.com', b_type: 'cookie', b_value: 'c-123'}
MATCH (a:Identifier {type: $a_type, value: $a_value})
MATCH (b:Identifier {type: $b_type, value: $b_value})
OPTIONAL MATCH (a)-[a_member:BELONGS_TO]->(pa:Profile)
OPTIONAL MATCH (b)-[b_member:BELONGS_TO]->(pb:Profile)
OPTIONAL MATCH chain = SHORTEST 1 (a) (()-[:LINKED]-(n:Identifier WHERE n.flag IS NULL)){1,15} (b)
  WHERE a.flag IS NULL
RETURN a, b, a_member, pa, b_member, pb, chain,
       COLLECT {
         MATCH between = (x:Identifier)-[:REJECTED_LINK|POSSIBLE_MATCH]-(y:Identifier)
         WHERE (x = a OR (x)-[:BELONGS_TO]->(pa)) AND (y = b OR (y)-[:BELONGS_TO]->(pb)) AND x <> y
         RETURN between LIMIT 50
       } AS between,
       a.flag AS a_flag, b.flag AS b_flag, pa = pb AS same_profile
