// The identifiers of one active profile (to hash them before the profile is forgotten).
// $profile_id. Returns type, value.
MATCH (:Profile {profile_id: $profile_id, active: true})<-[:BELONGS_TO]-(i:Identifier)
RETURN i.type AS type, i.value AS value
