"""Segmentation on a Dask cluster (the ``dask`` extra): a local cluster or a running
scheduler (:func:`connect`), lazy dask arrays (:func:`segment_dask`) and files whose
frames the workers segment and write into OME-Zarr stores (:func:`segment_on_cluster`).
Dask distributes the work; one model session per worker process."""

from .arrays import segment_dask
from .connect import connect
from .pipeline import SourceRef, segment_on_cluster
from .sessions import release_models

__all__ = ["SourceRef", "connect", "release_models", "segment_dask", "segment_on_cluster"]
