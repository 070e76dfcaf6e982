// One page of touchpoints that keep invalid values, in event_id order, with the identifiers
// they carry, for a replay to examine the values again. $after: the last event_id of the
// previous page ("" for the first); $limit. Returns event_id, occurred_at (epoch ms),
// source, channel, type, invalid (JSON texts {type, value, reason, replayable}),
// carried: [{type, value, primary}].
MATCH (t:HasInvalid)
WHERE t.event_id > $after
WITH t ORDER BY t.event_id LIMIT $limit
RETURN t.event_id AS event_id, t.occurred_at.epochMillis AS occurred_at, t.source AS source,
       t.channel AS channel, t.type AS type, t.invalid AS invalid,
       COLLECT { MATCH (t)-[c:CARRIED]->(i:Identifier)
                 RETURN {type: i.type, value: i.value, primary: c.primary} } AS carried
