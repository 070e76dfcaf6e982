// Whether two identifiers are linked directly. $a_type, $a_value, $b_type, $b_value.
MATCH (:Identifier {type: $a_type, value: $a_value})-[l:LINKED]-(:Identifier {type: $b_type, value: $b_value})
RETURN type(l) AS kind LIMIT 1
