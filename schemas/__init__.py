"""JSON Schemas of the request bodies and of execution plans."""
