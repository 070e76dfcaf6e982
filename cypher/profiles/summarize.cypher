// Recomputes profiles' summaries from their touchpoints (after a split or a rebuild).
// $profile_ids: [string]. Returns profile_id, first_seen, last_seen, online, offline,
// observations: [{traits (JSON text), source, occurred_at}] of touchpoints that carried traits;
// times in epoch milliseconds.
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id})
CALL (p) {
  OPTIONAL MATCH (p)<-[:BELONGS_TO]-(:Identifier)<-[:CARRIED {primary: true}]-(t:Touchpoint)
  RETURN
    min(t.occurred_at).epochMillis AS first_seen,
    max(t.occurred_at).epochMillis AS last_seen,
    count(CASE WHEN t.channel = 'online' THEN 1 END) AS online,
    count(CASE WHEN t.channel = 'offline' THEN 1 END) AS offline,
    collect(CASE WHEN t.traits <> '{}' THEN {traits: t.traits, source: t.source, occurred_at: t.occurred_at.epochMillis} END)
      AS observations
}
RETURN profile_id, first_seen, last_seen, online, offline, observations
