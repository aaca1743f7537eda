"""Blobs: content-addressed by SHA-256 on any fsspec URL; manifests of versions."""

from covex.artifacts.blobstore import BlobStore, BlobWriter, check_digest
from covex.artifacts.manifest import LocalFile, hash_file, manifest_digest, scan

__all__ = ["BlobStore", "BlobWriter", "LocalFile", "check_digest", "hash_file", "manifest_digest", "scan"]
