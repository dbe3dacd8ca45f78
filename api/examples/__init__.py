"""Example aggregates the service does not publish: the README's recipes, which tests serve (so they cannot rot)."""
