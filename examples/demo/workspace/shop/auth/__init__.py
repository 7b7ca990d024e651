"""Authentication and authorisation: passwords, tokens, sessions, permissions."""
