// How many identifiers carry person attributes. Returns matchable.
MATCH (m:Matchable) RETURN count(m) AS matchable
