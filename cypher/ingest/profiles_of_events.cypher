// The profile each (already stored) event belongs to now, for the acks of duplicates.
// $event_ids: [string]. Returns event_id, profile_id (null when the event has no profile).
UNWIND $event_ids AS event_id
MATCH (t:Touchpoint {event_id: event_id})
OPTIONAL MATCH (t)-[:CARRIED {primary: true}]->(:Identifier)-[:BELONGS_TO]->(p:Profile)
RETURN event_id, p.profile_id AS profile_id
