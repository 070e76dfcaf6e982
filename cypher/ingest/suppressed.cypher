// Which of these salted identifier hashes belong to forgotten people.
// $hashes: [string]. Returns hash for each suppressed one.
UNWIND $hashes AS hash
MATCH (s:Suppressed {hash: hash})
RETURN s.hash AS hash
