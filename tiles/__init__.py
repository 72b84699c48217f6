"""SkyGrid tiles package (to be built by its own issue)."""
