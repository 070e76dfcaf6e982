// Neo4j Browser: what a person allowed. The profile of one identifier with its consent per
// category (properties consent.<category>: granted, denied or conflict; consent_at.<category>
// and consent_source.<category>: the statement's event time and source, or "merge" for a
// conflict), and the touchpoints that stated any, newest first (StatesConsent:
// consent_granted, consent_denied, occurred_at, source). The latest statement by event time
// wins; profiles merged while they disagreed are in conflict until a newer statement (see the
// profile history slide); a category never stated has its configured default.
// In Browser first set the parameters, e.g. :param {type: 'email', value: 'ann@example.com'}
// $type, $value.
MATCH (:Identifier {type: $type, value: $value})-[:BELONGS_TO]->(p:Profile)
OPTIONAL MATCH (p)<-[member:BELONGS_TO]-(i:Identifier)<-[carried:CARRIED {primary: true}]-(t:StatesConsent)
WITH p, member, i, carried, t ORDER BY t.occurred_at DESC LIMIT 50
RETURN p, member, i, carried, t,
       [k IN keys(p) WHERE k STARTS WITH 'consent.' | substring(k, 8) + ': ' + p[k] + ' (' +
        coalesce(toString(p['consent_at.' + substring(k, 8)]), '-') + ', ' + coalesce(p['consent_source.' + substring(k, 8)], '') + ')']
         AS consent
