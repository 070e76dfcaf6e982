// How many touchpoints keep invalid values (for a replay's progress).
MATCH (t:HasInvalid)
RETURN count(t) AS touchpoints
