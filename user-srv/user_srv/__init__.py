"""user-srv: users and their argon2id password hashes (`user_srv.v1.UserService`)."""
