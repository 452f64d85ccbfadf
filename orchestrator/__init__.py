"""CyanPrint executor: renders each request into a plan and applies it to Docker."""

__version__ = "0.1.0"
