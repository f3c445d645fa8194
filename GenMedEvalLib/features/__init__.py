"""Deep features of volumes: encoders behind one interface, slicing rules, a content-addressed cache.

Importing this package does not import torch; encoders are loaded by name on first use.
"""

from .cache import CacheStats, FeatureCache, content_hash, default_cache_dir
from .extract import FeatureSet, extract_features, extract_folder, read_folder
from .registry import ENCODERS, encoder_names, get_encoder
from .slicing import PLANES, SliceInfo, Slices, SliceSettings, plane_axes, slice_volumes, volume_slices

__all__ = [
    "ENCODERS", "PLANES", "CacheStats", "FeatureCache", "FeatureSet", "SliceInfo", "SliceSettings", "Slices",
    "content_hash", "default_cache_dir", "encoder_names", "extract_features", "extract_folder", "get_encoder",
    "plane_axes", "read_folder", "slice_volumes", "volume_slices",
]
