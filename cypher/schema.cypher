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
