// What a profile's consent is computed from (server/identity/consent.py): the state it holds,
// the statements of its touchpoints, and the states of profiles merged into it that were not
// folded in yet (a merged-away profile keeps its state until then; chains up to 4 merges).
// Statements are read through the identifiers marked states_consent (ingest/record_identifiers),
// and only those not read yet (ConsentUnread), unless the profile was split (consent_split):
// then all of its own, since it starts again from them.
// $profile_ids: active profiles, locked by the caller.
// Returns profile_id; held: [[key, value]] (consent.*, consent_at.*, consent_source.*,
// consent_split); statements: [[occurred_at, source, granted [category], denied [category]]];
// absorbed: [[profile_id, [[key, value]]]].
UNWIND $profile_ids AS profile_id
MATCH (p:Profile {profile_id: profile_id, active: true})
WITH p, profile_id, p.consent_split IS NOT NULL AS split
RETURN profile_id,
  [k IN keys(p) WHERE k STARTS WITH 'consent' | [k, p[k]]] AS held,
  COLLECT {
    MATCH (p)<-[:BELONGS_TO]-(:Identifier {states_consent: true})<-[:CARRIED {primary: true}]-(t:StatesConsent)
    WHERE split OR t:ConsentUnread
    RETURN [t.occurred_at, t.source, t.consent_granted, t.consent_denied]
  } AS statements,
  COLLECT {
    MATCH (old:Profile)-[:MERGED_INTO*1..4]->(p)
    WHERE any(k IN keys(old) WHERE k STARTS WITH 'consent.')
    RETURN DISTINCT [old.profile_id, [k IN keys(old) WHERE k STARTS WITH 'consent' | [k, old[k]]]]
  } AS absorbed
