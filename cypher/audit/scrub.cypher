// Forgetting reaches the audit trail: wherever an entry names one of the person's identifiers
// in clear (entries written before identifiers were hashed, an error message that quoted
// one), the value is replaced by its salted hash. A scan of the trail, which retention keeps
// bounded; forgetting is rare.
// $replacements: [{value, marker}] (the identifier's value and "#<salted hash>").
// Returns scrubbed: how many entries changed.
MATCH (a:AuditEntry)
WHERE any(r IN $replacements WHERE a.target CONTAINS r.value OR a.detail CONTAINS r.value)
SET a.target = reduce(text = a.target, r IN $replacements | replace(text, r.value, r.marker)),
    a.detail = reduce(text = a.detail, r IN $replacements | replace(text, r.value, r.marker))
RETURN count(a) AS scrubbed
