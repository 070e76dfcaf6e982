"""Segments: rule trees over unified profiles, compiled to parametrised Cypher."""
