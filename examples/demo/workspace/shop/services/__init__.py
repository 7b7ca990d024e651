"""Business rules. Services own repositories and never talk to requests."""
