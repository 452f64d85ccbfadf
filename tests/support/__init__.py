"""Helpers for tests that run against a real Docker engine.

images      builds the Python base image, the fixture images and the
            executor's image, reusing each one while its inputs are unchanged.
registry    runs a throwaway Docker registry on 127.0.0.1 to push images to.
containers  creates networks, volumes and containers under a unique name
            prefix and removes them all afterwards.
"""
