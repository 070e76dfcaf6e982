// Starts a full recomputation of the components: every identifier is its own component.
// Runs in batches (auto-commit). No parameters.
MATCH (i:Identifier)
CALL (i) {
  SET i.component = i.type + ':' + i.value
} IN TRANSACTIONS OF 10000 ROWS
