// One round of min-id propagation: each identifier takes the smallest component id among
// its accepted links. Links touching a flagged identifier do not count. Repeat until no
// identifier changes. Runs in batches (auto-commit). No parameters.
// Returns changed (identifiers that took a smaller id this round).
MATCH (a:Identifier)-[:LINKED]-(b:Identifier)
WHERE a.flag IS NULL AND b.flag IS NULL AND b.component < a.component
WITH a, min(b.component) AS smallest
CALL (a, smallest) {
  SET a.component = smallest
} IN TRANSACTIONS OF 10000 ROWS
RETURN count(*) AS changed
