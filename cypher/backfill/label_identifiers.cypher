// Backfill: the labels Neo4j Browser's style reads, on identifiers written before ingest wrote
// them: one per identifier type ($label for $type, e.g. :Email for email) and :Flagged on
// flagged ones. One page of $limit identifiers of the type after $after in value order (the
// (type, value) index), one transaction; call with the returned last value until it is null.
// Returns updated, last (the page's last value, null past the end).
MATCH (i:Identifier {type: $type})
WHERE i.value > $after
WITH i ORDER BY i.value LIMIT $limit
WITH collect(i) AS page
CALL (page) {
  UNWIND page AS i
  WITH i WHERE NOT $label IN labels(i) OR (i.flag IS NOT NULL AND NOT i:Flagged)
  SET i:$($label)
  FOREACH (_ IN CASE WHEN i.flag IS NOT NULL THEN [1] ELSE [] END | SET i:Flagged)
  RETURN count(i) AS updated
}
RETURN updated, CASE WHEN size(page) = 0 THEN null ELSE page[-1].value END AS last
