// The identity graph of one profile for GetIdentityGraph and Browser: its identifiers, the
// links among them with their evidence, and every rejected link touching them with its reason.
// $profile_id (current). Returns identifiers: [{type, value, flag, flag_reason}] and
// edges: [{kind, a_type, a_value, b_type, b_value, reason, times_seen, first_seen,
// last_seen, event_ids}] where kind is 'linked' or 'rejected'.
MATCH (p:Profile {profile_id: $profile_id, active: true})
RETURN
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    RETURN {type: i.type, value: i.value, flag: i.flag, flag_reason: i.flag_reason, member: true}
  } + COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(:Identifier)-[:REJECTED_LINK]-(o:Identifier)
    WHERE NOT (o)-[:BELONGS_TO]->(p)
    RETURN DISTINCT {type: o.type, value: o.value, flag: o.flag, flag_reason: o.flag_reason, member: false}
  } AS identifiers,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(a:Identifier)-[l:LINKED|REJECTED_LINK]->(b:Identifier)
    RETURN {kind: CASE type(l) WHEN 'LINKED' THEN 'linked' ELSE 'rejected' END,
            a_type: a.type, a_value: a.value, b_type: b.type, b_value: b.value,
            reason: l.reason, times_seen: l.times_seen, first_seen: l.first_seen.epochMillis,
            last_seen: l.last_seen.epochMillis, event_ids: l.event_ids} AS edge
    UNION
    MATCH (p)<-[:BELONGS_TO]-(b:Identifier)<-[l:REJECTED_LINK]-(a:Identifier)
    WHERE NOT (a)-[:BELONGS_TO]->(p)
    RETURN {kind: 'rejected',
            a_type: a.type, a_value: a.value, b_type: b.type, b_value: b.value,
            reason: l.reason, times_seen: l.times_seen, first_seen: l.first_seen.epochMillis,
            last_seen: l.last_seen.epochMillis, event_ids: l.event_ids} AS edge
  } AS edges
