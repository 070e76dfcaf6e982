// The readiness probe: Neo4j answers a query on the service's database. No parameters.
RETURN 1 AS up
