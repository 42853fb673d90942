"""Process concerns: logging, parent watch, socket guard, serving state, exit."""
