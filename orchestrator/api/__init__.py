"""The Falcon applications: the executor's API and the merger role's API."""
