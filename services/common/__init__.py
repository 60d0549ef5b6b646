"""Transport pieces every service shares: the gRPC server bootstrap and settings loading."""
