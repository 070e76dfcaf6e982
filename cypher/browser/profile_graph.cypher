// Neo4j Browser: the identity graph of the profile holding one identifier, with accepted
// links (LINKED), refused ones (REJECTED_LINK, with reason) and flagged identifiers.
// In Browser first set the parameters, e.g. :param {type: 'email', value: 'ann@example.com'}
// $type, $value.
MATCH (:Identifier {type: $type, value: $value})-[:BELONGS_TO]->(p:Profile)
MATCH (p)<-[member:BELONGS_TO]-(i:Identifier)
OPTIONAL MATCH (i)-[link:LINKED|REJECTED_LINK]-(other:Identifier)
RETURN p, member, i, link, other
