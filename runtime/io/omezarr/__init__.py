"""Zarr and OME-Zarr (NGFF 0.4, 0.5) inputs and outputs. zarr, ome-zarr-py and
ome-zarr-models are imported only when a store is read or written (the ``zarr`` extra)."""
