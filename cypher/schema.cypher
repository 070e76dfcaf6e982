// Constraints and indexes of the identity graph; every statement is idempotent.
// Applied in order by the server at start (Graph.apply_schema); no parameters.

CREATE CONSTRAINT touchpoint_event_id IF NOT EXISTS
FOR (t:Touchpoint) REQUIRE t.event_id IS UNIQUE;

CREATE CONSTRAINT identifier_type_value IF NOT EXISTS
FOR (i:Identifier) REQUIRE (i.type, i.value) IS UNIQUE;

CREATE CONSTRAINT profile_id IF NOT EXISTS
FOR (p:Profile) REQUIRE p.profile_id IS UNIQUE;

CREATE INDEX touchpoint_occurred_at IF NOT EXISTS
FOR (t:Touchpoint) ON (t.occurred_at);

CREATE CONSTRAINT suppressed_hash IF NOT EXISTS
FOR (s:Suppressed) REQUIRE s.hash IS UNIQUE;

CREATE INDEX profile_active IF NOT EXISTS
FOR (p:Profile) ON (p.active);

// Probabilistic linkage: identifiers with person attributes (Matchable) carry up to six
// blocking keys, one per configured blocking pass, and a name key. Each key is indexed with
// the name key, so candidates are fetched by equality on the block and, in a block larger
// than the cap, as the nearest neighbours by name (sorted neighbourhood).
CREATE INDEX matchable_block_0_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_0, m.name_key);
CREATE INDEX matchable_block_1_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_1, m.name_key);
CREATE INDEX matchable_block_2_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_2, m.name_key);
CREATE INDEX matchable_block_3_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_3, m.name_key);
CREATE INDEX matchable_block_4_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_4, m.name_key);
CREATE INDEX matchable_block_5_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_5, m.name_key);
CREATE INDEX matchable_block_6_name IF NOT EXISTS FOR (m:Matchable) ON (m.block_6, m.name_key);

CREATE INDEX link_pending_since IF NOT EXISTS
FOR (m:LinkPending) ON (m.pending_since);

CREATE CONSTRAINT linkage_model_version IF NOT EXISTS
FOR (m:LinkageModel) REQUIRE m.version IS UNIQUE;

// The online worker's claim on fitting a model (linkage/claim_fit): one node, MERGEd by name.
CREATE CONSTRAINT linkage_fitting_name IF NOT EXISTS
FOR (f:LinkageFitting) REQUIRE f.name IS UNIQUE;

// Segments: definitions by name, membership as (:Profile)-[:IN_SEGMENT]->(:Segment) edges,
// profiles waiting for re-evaluation (SegmentsDirty, oldest first), and the change log
// that WatchSegment reads by position.
CREATE CONSTRAINT segment_name IF NOT EXISTS
FOR (s:Segment) REQUIRE s.name IS UNIQUE;

CREATE CONSTRAINT segment_version IF NOT EXISTS
FOR (v:SegmentVersion) REQUIRE (v.name, v.version) IS UNIQUE;

CREATE INDEX segments_dirty_since IF NOT EXISTS
FOR (p:SegmentsDirty) ON (p.dirty_since);

CREATE CONSTRAINT segment_log_name IF NOT EXISTS
FOR (l:SegmentLog) REQUIRE l.name IS UNIQUE;

CREATE CONSTRAINT segment_change_position IF NOT EXISTS
FOR (c:SegmentChange) REQUIRE c.position IS UNIQUE;

CREATE INDEX segment_change_segment_position IF NOT EXISTS
FOR (c:SegmentChange) ON (c.segment, c.position);

CREATE INDEX segment_change_at IF NOT EXISTS
FOR (c:SegmentChange) ON (c.at);

// Quarantine: rejected events and records by id (a digest of their payload), expired by
// last rejection; touchpoints that keep invalid values, paged by event_id on replay.
CREATE CONSTRAINT rejected_id IF NOT EXISTS
FOR (r:Rejected) REQUIRE r.id IS UNIQUE;

CREATE INDEX rejected_last_rejected_at IF NOT EXISTS
FOR (r:Rejected) ON (r.last_rejected_at);

CREATE INDEX has_invalid_event_id IF NOT EXISTS
FOR (t:HasInvalid) ON (t.event_id);

// The audit trail, read newest first and by time range.
CREATE INDEX audit_entry_at IF NOT EXISTS
FOR (a:AuditEntry) ON (a.at);

// Refused calls are counted per minute, caller, method and outcome (audit/count_refusals).
CREATE INDEX audit_entry_refusal_key IF NOT EXISTS
FOR (a:AuditEntry) ON (a.refusal_key);
