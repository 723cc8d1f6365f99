"""The servers every service gets: gRPC (grpc.aio) and HTTP (FastAPI on uvicorn)."""
