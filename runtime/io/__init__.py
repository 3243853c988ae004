"""Inputs and outputs: sources read by registered readers, outputs written by registered
writers, calibration per axis, output naming, atomic files.

TIFF (ImageJ / OME / plain, BigTIFF) through tifffile; PNG, JPEG and BMP through
Pillow. Every problem with an input is raised as one :class:`~ernet.runtime.errors.InputError`
line naming the file.
"""

from .calibration import MICROMETRE_UNITS, AxisScale, Calibration
from .files import atomic_output, check_name_length, file_sha256, refuse_existing
from .naming import input_stem, mask_path, output_path
from .pairs import LabelledPair, labelled_pairs
from .readers import Reader, known_suffixes, open_image, reader_for, register_reader
from .source import Layout, Source, select
from .tiff import TiffStackWriter, write_tiff
from .writers import Writer, open_writer, register_writer

__all__ = [
    "MICROMETRE_UNITS",
    "AxisScale",
    "Calibration",
    "LabelledPair",
    "Layout",
    "Reader",
    "Source",
    "TiffStackWriter",
    "Writer",
    "atomic_output",
    "check_name_length",
    "file_sha256",
    "input_stem",
    "known_suffixes",
    "labelled_pairs",
    "mask_path",
    "open_image",
    "open_writer",
    "reader_for",
    "output_path",
    "refuse_existing",
    "register_reader",
    "register_writer",
    "select",
    "write_tiff",
]
