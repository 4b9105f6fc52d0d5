"""Datasets, manifests and crops."""
from wavediff.data.datasets import VocoderDataset
from wavediff.data.manifest import AudioEntry, read_entries, split_entries

__all__ = ["AudioEntry", "VocoderDataset", "read_entries", "split_entries"]
