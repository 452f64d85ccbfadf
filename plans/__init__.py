"""Jinja templates that render each request into a YAML execution plan."""
