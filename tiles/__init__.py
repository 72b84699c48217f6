"""SkyGrid map tiles: vector tiles of plans and zones, offline basemaps, orthomosaics and the GCJ-02 offset.

``mvt`` (indexed vector-tile source, ``mvt_encode`` the encoder) and ``cache`` (bounded, invalidated by plan
version) serve the maps; ``pmtiles`` builds offline basemap packages with tippecanoe and reads them back;
``raster`` mosaics posed drone frames into XYZ tiles; ``gcj02`` converts WGS-84 to and from GCJ-02 exactly, for
display on Gaode/Tencent basemaps only (SkyGrid stores WGS-84).
"""
