"""The simulator's own tests (sim/)."""
