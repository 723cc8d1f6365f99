"""data_srv."""
