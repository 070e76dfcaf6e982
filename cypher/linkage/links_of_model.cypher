// The probabilistic links a model made that are in the graph now, by probability band.
// $version; $edges: ascending band edges from the model's upper threshold to 1 (the last band
// includes 1). Returns bands: [count per band], total, probability_sum.
MATCH ()-[l:LINKED {kind: 'probabilistic', model_version: $version}]->()
WITH collect(l.probability) AS probabilities
RETURN [i IN range(0, size($edges) - 2) |
          size([p IN probabilities WHERE p >= $edges[i] AND (p < $edges[i + 1] OR i = size($edges) - 2)])] AS bands,
       size(probabilities) AS total,
       reduce(s = 0.0, p IN probabilities | s + p) AS probability_sum
