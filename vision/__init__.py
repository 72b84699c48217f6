"""SkyGrid vision package (to be built by its own issue)."""
