"""token-srv: issues, verifies, refreshes and revokes JWTs (`token_srv.v1.TokenService`)."""
