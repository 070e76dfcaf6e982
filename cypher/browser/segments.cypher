// Neo4j Browser: a segment's members as a graph (profile -> segment edges with since),
// with their identifiers, beside the segment's current rule (JSON), its compiled Cypher
// predicate and the latest changes of its feed. Switch to Table for the details.
// $segment, e.g. :param {segment: 'repeat-buyers'}
MATCH (s:Segment {name: $segment})
OPTIONAL MATCH (s)<-[m:IN_SEGMENT]-(p:Profile)
WITH s, m, p LIMIT 100
OPTIONAL MATCH (p)<-[b:BELONGS_TO]-(i:Identifier)
RETURN s, m, p, b, i,
       s.version AS version, s.rule AS rule, s.predicate AS predicate,
       COLLECT {
         MATCH (c:SegmentChange) WHERE c.segment = s.name
         RETURN c.position + ' ' + c.kind + ' ' + c.profile_id + ' (' + c.cause + ')' AS change
         ORDER BY c.position DESC LIMIT 20
       } AS latest_changes
