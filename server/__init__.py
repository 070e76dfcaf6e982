"""Identity resolution service: identifiers and touchpoints stitched into profiles in Neo4j."""
