// The indexes that are not ONLINE yet, for the message when waiting for them timed out.
// Returns name, state.
SHOW INDEXES YIELD name, state WHERE state <> 'ONLINE'
RETURN name, state
