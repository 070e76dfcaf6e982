// Takes items out of quarantine: replayed and accepted (or refused for good, as a forgotten
// person's). $ids: [string].
UNWIND $ids AS id
MATCH (r:Rejected {id: id})
DELETE r
