"""SkyGrid drone package (to be built by its own issue)."""
