// A profile's touchpoints, newest first, filtered, resuming after a cursor.
// A touchpoint belongs to the profile of its primary identifier, so each appears once.
// $profile_id; $since, $until (datetime or null, half-open range); $types, $channels,
// $sources (lists, empty for all); $after_time, $after_id (the cursor, or null).
// Returns occurred_at in epoch milliseconds.
MATCH (:Profile {profile_id: $profile_id})<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint)
WHERE ($since IS NULL OR t.occurred_at >= $since)
  AND ($until IS NULL OR t.occurred_at < $until)
  AND (size($types) = 0 OR t.type IN $types)
  AND (size($channels) = 0 OR t.channel IN $channels)
  AND (size($sources) = 0 OR t.source IN $sources)
  AND ($after_time IS NULL OR t.occurred_at < $after_time
       OR (t.occurred_at = $after_time AND t.event_id < $after_id))
RETURN t.event_id AS event_id, t.occurred_at.epochMillis AS occurred_at, t.source AS source, t.channel AS channel,
       t.type AS type, t.properties AS properties,
       COLLECT { MATCH (t)-[:CARRIED]->(i:Identifier) RETURN {type: i.type, value: i.value} } AS identifiers
ORDER BY t.occurred_at DESC, event_id DESC
LIMIT $limit
