"""A run directory's record: its status, its metrics log and its curves."""
