// Writes what a replay decided about touchpoints' invalid values: those still invalid (with
// their reasons of today); a touchpoint left without any loses its HasInvalid label.
// $rows: [{event_id, invalid: [JSON text]}].
UNWIND $rows AS row
MATCH (t:Touchpoint {event_id: row.event_id})
SET t.invalid = CASE WHEN size(row.invalid) > 0 THEN row.invalid END
FOREACH (_ IN CASE WHEN size(row.invalid) = 0 THEN [1] ELSE [] END | REMOVE t:HasInvalid)
