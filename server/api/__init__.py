"""gRPC transport: servicers translate messages and status codes, and nothing else."""
