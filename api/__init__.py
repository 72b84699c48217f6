"""SkyGrid api package (to be built by its own issue)."""
