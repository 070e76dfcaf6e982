// Writes a stitching plan in one round trip, in an order that keeps every step valid: new
// profiles first, identifiers into profiles, merges, the links' evidence, flags, summaries.
// Every identifier and profile it touches is locked already (stitching/read_state).
// $now; $cause: why the profiles changed (ingest, linkage, unlink); $evidence_kept: how many
// recent event ids an edge keeps. $plan: one map of lists, any of them empty (list parameters
// that are sometimes empty would make Neo4j plan the query again for each combination):
// - new_profiles: [string];
// - assignments: [{type, value, profile_id}]: identifiers that had no profile, or that a
//   split moves (their old membership is removed);
// - merges: [{absorbed, survivor, a_type, a_value, b_type, b_value, event_id}], in order: the
//   absorbed profile's identifiers move to the survivor, and it stays as an inactive node
//   that points to the survivor, so a lookup by its id still resolves;
// - links, rejections: [{a_type, a_value, b_type, b_value, event_id, occurred_at (epoch ms)}]
//   (rejections with their reason): one LINKED or REJECTED_LINK edge per pair, directed from
//   the lower (type, value) to the higher;
// - flags: [{type, value, flag, reason}]: identifiers that must link no more;
// - summaries: [{profile_id, golden (JSON text), traits: {`trait.<key>`: value}, first_seen,
//   last_seen (epoch ms or null), touchpoints_online, touchpoints_offline}]: what a lookup
//   reads without traversal (and p.size, its identifiers counted here, Browser's caption).
//   The golden record is kept twice: as JSON with each value's source and time (for
//   lookups) and as one `trait.<key>` property per trait, which segment rules compare.
//   Summarised profiles wait for segment re-evaluation (SegmentsDirty; the first cause
//   since the last evaluation is kept).
CALL () {
  UNWIND $plan.new_profiles AS profile_id
  CREATE (:Profile {profile_id: profile_id, active: true, created_at: $now})
}
CALL () {
  UNWIND $plan.assignments AS row
  MATCH (i:Identifier {type: row.type, value: row.value})
  MATCH (p:Profile {profile_id: row.profile_id})
  OPTIONAL MATCH (i)-[old:BELONGS_TO]->(:Profile)
  DELETE old
  CREATE (i)-[:BELONGS_TO]->(p)
}
CALL () {
  UNWIND $plan.merges AS row
  MATCH (old:Profile {profile_id: row.absorbed})
  MATCH (new:Profile {profile_id: row.survivor})
  CALL (old, new) {
    MATCH (i:Identifier)-[r:BELONGS_TO]->(old)
    DELETE r
    CREATE (i)-[:BELONGS_TO]->(new)
  }
  FOREACH (key IN [k IN keys(old) WHERE k STARTS WITH 'trait.'] | SET old[key] = null)
  SET old.active = false, old.merged_at = $now, old.golden = null
  // both sides are re-evaluated for segments: the survivor may enter, and the absorbed id
  // exits the segments it was in; a merge names the cause over an earlier ingest not yet evaluated
  SET new:SegmentsDirty, new.dirty_since = coalesce(new.dirty_since, datetime()), new.dirty_cause = 'merge'
  FOREACH (_ IN CASE WHEN EXISTS { (old)-[:IN_SEGMENT]->() } THEN [1] ELSE [] END |
    SET old:SegmentsDirty, old.dirty_since = coalesce(old.dirty_since, datetime()), old.dirty_cause = 'merge')
  CREATE (old)-[:MERGED_INTO {
    at: $now,
    link: row.a_type + ':' + row.a_value + ' ~ ' + row.b_type + ':' + row.b_value,
    event_id: row.event_id
  }]->(new)
}
CALL () {
  UNWIND $plan.links AS row
  WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
  MATCH (a:Identifier {type: row.a_type, value: row.a_value})
  MATCH (b:Identifier {type: row.b_type, value: row.b_value})
  MERGE (a)-[l:LINKED]->(b)
    ON CREATE SET l.first_seen = occurred_at, l.last_seen = occurred_at, l.times_seen = 0, l.event_ids = []
  SET
    l.times_seen = l.times_seen + 1,
    l.first_seen = CASE WHEN occurred_at < l.first_seen THEN occurred_at ELSE l.first_seen END,
    l.last_seen = CASE WHEN occurred_at > l.last_seen THEN occurred_at ELSE l.last_seen END,
    l.event_ids = (l.event_ids + row.event_id)[-$evidence_kept..]
}
CALL () {
  UNWIND $plan.rejections AS row
  WITH row, datetime({epochMillis: row.occurred_at}) AS occurred_at
  MATCH (a:Identifier {type: row.a_type, value: row.a_value})
  MATCH (b:Identifier {type: row.b_type, value: row.b_value})
  MERGE (a)-[r:REJECTED_LINK]->(b)
    ON CREATE SET r.first_seen = occurred_at, r.last_seen = occurred_at, r.times_seen = 0, r.event_ids = []
  SET
    r.reason = CASE WHEN r.by_operator THEN r.reason ELSE row.reason END,
    r.times_seen = r.times_seen + 1,
    r.first_seen = CASE WHEN occurred_at < r.first_seen THEN occurred_at ELSE r.first_seen END,
    r.last_seen = CASE WHEN occurred_at > r.last_seen THEN occurred_at ELSE r.last_seen END,
    r.event_ids = (r.event_ids + row.event_id)[-$evidence_kept..]
}
CALL () {
  UNWIND $plan.flags AS row
  MATCH (i:Identifier {type: row.type, value: row.value})
  SET i.flag = row.flag, i.flag_reason = row.reason, i.flagged_at = $now, i:Flagged
}
CALL () {
  UNWIND $plan.summaries AS row
  MATCH (p:Profile {profile_id: row.profile_id})
  FOREACH (key IN [k IN keys(p) WHERE k STARTS WITH 'trait.' AND NOT k IN keys(row.traits)] | SET p[key] = null)
  SET
    p += row.traits,
    p.golden = row.golden,
    p.first_seen = CASE WHEN row.first_seen IS NULL THEN null ELSE datetime({epochMillis: row.first_seen}) END,
    p.last_seen = CASE WHEN row.last_seen IS NULL THEN null ELSE datetime({epochMillis: row.last_seen}) END,
    p.touchpoints_online = row.touchpoints_online,
    p.touchpoints_offline = row.touchpoints_offline,
    p.size = COUNT { (p)<-[:BELONGS_TO]-() },  // identifiers, after this plan's moves: Browser's caption
    p:SegmentsDirty,
    p.dirty_since = coalesce(p.dirty_since, datetime()),
    p.dirty_cause = coalesce(p.dirty_cause, $cause)
}
