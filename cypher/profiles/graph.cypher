// The identity graph of one profile for GetIdentityGraph and Browser: its identifiers, the
// links among them with their evidence (probabilistic ones with the model's), and every
// rejected link and possible match touching them.
// $profile_id (current). Returns identifiers: [{type, value, flag, flag_reason}] and
// edges: [{kind, a_type, a_value, b_type, b_value, reason, times_seen, first_seen,
// last_seen, event_ids, probability, model_version, fields (JSON)}] where kind is 'linked',
// 'probabilistic', 'confirmed', 'possible' or 'rejected'; invalid: [{event_id, occurred_at,
// invalid: [JSON text]}] of the 100 most recent touchpoints that kept invalid values;
// consent: [[key, value]] of the profile's consent properties (as profiles/lookup).
MATCH (p:Profile {profile_id: $profile_id, active: true})
RETURN
  [k IN keys(p) WHERE k STARTS WITH 'consent' | [k, p[k]]] AS consent,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    RETURN {type: i.type, value: i.value, flag: i.flag, flag_reason: i.flag_reason, member: true}
  } + COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(:Identifier)-[:REJECTED_LINK|POSSIBLE_MATCH]-(o:Identifier)
    WHERE NOT (o)-[:BELONGS_TO]->(p)
    RETURN DISTINCT {type: o.type, value: o.value, flag: o.flag, flag_reason: o.flag_reason, member: false}
  } AS identifiers,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(a:Identifier)-[l:LINKED|REJECTED_LINK|POSSIBLE_MATCH]->(b:Identifier)
    RETURN {kind: CASE type(l) WHEN 'LINKED' THEN coalesce(l.kind, 'linked')
                               WHEN 'POSSIBLE_MATCH' THEN 'possible' ELSE 'rejected' END,
            a_type: a.type, a_value: a.value, b_type: b.type, b_value: b.value,
            reason: l.reason, times_seen: l.times_seen, first_seen: l.first_seen.epochMillis,
            last_seen: l.last_seen.epochMillis, event_ids: l.event_ids,
            probability: l.probability, model_version: l.model_version, fields: l.fields} AS edge
    UNION
    MATCH (p)<-[:BELONGS_TO]-(b:Identifier)<-[l:REJECTED_LINK|POSSIBLE_MATCH]-(a:Identifier)
    WHERE NOT (a)-[:BELONGS_TO]->(p)
    RETURN {kind: CASE type(l) WHEN 'POSSIBLE_MATCH' THEN 'possible' ELSE 'rejected' END,
            a_type: a.type, a_value: a.value, b_type: b.type, b_value: b.value,
            reason: l.reason, times_seen: l.times_seen, first_seen: l.first_seen.epochMillis,
            last_seen: l.last_seen.epochMillis, event_ids: l.event_ids,
            probability: l.probability, model_version: l.model_version, fields: l.fields} AS edge
  } AS edges
  ,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:HasInvalid)
    WITH t ORDER BY t.occurred_at DESC LIMIT 100
    RETURN {event_id: t.event_id, occurred_at: t.occurred_at.epochMillis, invalid: t.invalid}
  } AS invalid
