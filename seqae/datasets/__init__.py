"""Turning files into batches: arrays and images (text and audio follow the same interface)."""

from seqae.datasets.base import BatchSource, DataError

__all__ = ["BatchSource", "DataError"]
