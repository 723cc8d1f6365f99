"""admin-srv: the gateway serving the admin operations over HTTP and gRPC, backed by
user-srv, token-srv and device-srv."""
