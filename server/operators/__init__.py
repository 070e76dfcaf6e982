"""What operators use beside the gRPC API: the Neo4j Browser style and guide (browser.py)."""
