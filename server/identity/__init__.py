"""The identity domain: normalisation, stitching, linkage, profiles, journeys, segments."""
