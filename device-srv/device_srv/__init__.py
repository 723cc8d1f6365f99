"""device-srv: `device_srv.v1.DevSvc` over gRPC, which devices are known and which are
active."""
