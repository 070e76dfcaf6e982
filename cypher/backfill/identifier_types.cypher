// Backfill: the identifier types present in the graph. No parameters. Returns type.
MATCH (i:Identifier)
RETURN DISTINCT i.type AS type
