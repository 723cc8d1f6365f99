"""device_srv."""
