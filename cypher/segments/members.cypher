// A segment's current members with the identifiers a destination asks for, streamed.
// $segment; $types: [identifier type] (empty: all types).
// Returns profile_id, since (epoch ms), identifiers: [{type, value}].
MATCH (:Segment {name: $segment})<-[m:IN_SEGMENT]-(p:Profile)
RETURN
  p.profile_id AS profile_id,
  m.since.epochMillis AS since,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(i:Identifier)
    WHERE size($types) = 0 OR i.type IN $types
    RETURN {type: i.type, value: i.value} AS identifier
    ORDER BY identifier.type, identifier.value
  } AS identifiers
