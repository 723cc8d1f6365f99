"""token_srv."""
