"""Generated protobuf and gRPC code of the services' contracts (make proto)."""
