"""user_srv."""
