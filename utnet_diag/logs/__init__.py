"""Training-log parsing and checks."""
