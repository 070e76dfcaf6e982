// Stores profiles' recomputed consent; marks their statements read; removes the state of
// merged-away profiles that was folded into their survivor (so that it counts once, and a
// forgotten person leaves none).
// $rows: [{profile_id, properties: {`consent.<category>`: state, `consent_at.<category>`:
// datetime, `consent_source.<category>`: source; null removes}}]; $read: [profile_id] whose
// statements were read; $folded: [profile_id].
CALL () {
  UNWIND $rows AS row
  MATCH (p:Profile {profile_id: row.profile_id})
  SET p += row.properties
}
CALL () {
  UNWIND $read AS profile_id
  MATCH (:Profile {profile_id: profile_id})<-[:BELONGS_TO]-(:Identifier {states_consent: true})
        <-[:CARRIED {primary: true}]-(t:ConsentUnread)
  REMOVE t:ConsentUnread
}
CALL () {
  UNWIND $folded AS profile_id
  MATCH (old:Profile {profile_id: profile_id})
  FOREACH (key IN [k IN keys(old) WHERE k STARTS WITH 'consent'] | SET old[key] = null)
}
