"""The napari plugin (npe2; manifest ``napari.yaml``, extra ``napari``): the Segment ER
and Measure ER network dock widgets and a sample time-lapse.

A thin layer over the runtime: :mod:`.segment` and :mod:`.measure` turn layer data and
options into layer data with plain functions (no Qt, no napari), :mod:`.widgets` puts
forms over them, :mod:`.sample` draws the sample. Nothing here is imported by the
runtime itself.
"""
