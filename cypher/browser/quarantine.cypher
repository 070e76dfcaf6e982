// Browser: quarantined events and records by reason code, with the newest example of each.
MATCH (r:Rejected)
WITH r.code AS code, r.kind AS kind, count(*) AS items, max(r.last_rejected_at) AS newest,
     collect(r)[0] AS example
RETURN code, kind, items, newest, example.reason AS example_reason, example.subject_id AS example_id
ORDER BY items DESC
