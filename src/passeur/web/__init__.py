"""Static web pages (pilot, staff, spectator, reader) and their fr/en strings."""
