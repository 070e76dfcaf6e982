// Neo4j Browser: the blocklisted junk values and how often recent touchpoints carried them.
// Junk is kept on each touchpoint (its `junk` property), not linked: see ingest/record_identifiers.
// $since, e.g. :param {since: datetime() - duration('P7D')}
MATCH (t:Touchpoint) WHERE t.junk IS NOT NULL AND t.occurred_at >= $since
UNWIND t.junk AS junk
RETURN junk, count(*) AS touchpoints, collect(t.event_id)[..10] AS examples
ORDER BY touchpoints DESC
