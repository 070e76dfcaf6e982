// Neo4j Browser: how a profile came to be: the profiles merged into it and the ones split
// off it, with when and why. $profile_id, e.g. :param {profile_id: '...'}
MATCH (p:Profile {profile_id: $profile_id})
OPTIONAL MATCH merged = (p)<-[:MERGED_INTO*1..]-(:Profile)
OPTIONAL MATCH split = (p)<-[:SPLIT_FROM]-(:Profile)
RETURN p, merged, split
