"""Django management commands that belong to the upstreams app."""
