// Audit retention: deletes up to $batch entries older than $before (epoch ms), oldest first.
// Returns deleted (fewer than $batch: nothing older is left).
MATCH (a:AuditEntry)
WHERE a.at < datetime({epochMillis: $before})
WITH a ORDER BY a.at LIMIT $batch
DETACH DELETE a
RETURN count(*) AS deleted
