"""data-srv: `GET /data/{device}` over HTTP, answered by asking device-srv whether the
device is active."""
