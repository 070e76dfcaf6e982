// For the summary of an import: how many identifiers each record's profile holds, beside
// how many the record itself brought (its own and those its touchpoints carried).
// $keys: [{type, value}] (record identifiers). Returns type, value, held, own.
UNWIND $keys AS key
MATCH (r:Identifier {type: key.type, value: key.value})-[:BELONGS_TO]->(p:Profile)
RETURN r.type AS type, r.value AS value,
       COUNT { (p)<-[:BELONGS_TO]-(:Identifier) } AS held,
       // two MATCH clauses: in one pattern the edge to r could not be matched twice, and r
       // itself would not count
       COUNT { MATCH (r)<-[:CARRIED]-(t:Touchpoint) MATCH (t)-[:CARRIED]->(o:Identifier) RETURN DISTINCT o } AS own
