// Which of the batch's identifier pairs an operator unlinked (they must stay apart).
// $pairs: [{a_type, a_value, b_type, b_value}]
// Returns a_type, a_value, b_type, b_value for each pair with an operator's rejection.
UNWIND $pairs AS pair
MATCH (a:Identifier {type: pair.a_type, value: pair.a_value})
      -[r:REJECTED_LINK {by_operator: true}]-
      (b:Identifier {type: pair.b_type, value: pair.b_value})
RETURN DISTINCT pair.a_type AS a_type, pair.a_value AS a_value, pair.b_type AS b_type, pair.b_value AS b_value
