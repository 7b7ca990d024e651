"""One-off data migrations, run by operators against JSON exports."""
