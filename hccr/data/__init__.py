"""Data: CASIA readers (.gnt, .pot, PNG export), charsets, the packed store, synthetic handwriting."""

from .charset import Charset, gb2312_chars, resolve_charset
from .gnt import iter_gnt, parse_gnt, read_gnt, write_gnt
from .images import iter_image_folder, load_gray, scan_image_folder
from .pot import iter_pot, parse_pot, read_pot
from .store import ConvertOptions, Store, convert

__all__ = [
    "Charset", "ConvertOptions", "Store", "convert", "gb2312_chars", "iter_gnt", "iter_image_folder",
    "iter_pot", "load_gray", "parse_gnt", "parse_pot", "read_gnt", "read_pot", "resolve_charset",
    "scan_image_folder", "write_gnt",
]
