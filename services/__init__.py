"""hybridrl services: thin transport adapters (gRPC, Kafka, S3) over the hybridrl core."""
