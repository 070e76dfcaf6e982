// Sizes of the identity graph, for the recompute report.
// No parameters. Returns identifiers, profiles (active), components (distinct ids).
MATCH (i:Identifier)
WITH count(i) AS identifiers, count(DISTINCT i.component) AS components
RETURN identifiers, components, COUNT { (:Profile {active: true}) } AS profiles
