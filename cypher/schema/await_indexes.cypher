// Waits until every index is ONLINE (a server must not serve before its indexes exist).
// $seconds: how long to wait before Neo4j gives up.
CALL db.awaitIndexes($seconds)
