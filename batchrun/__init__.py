"""batchrun: run FLORA techniques in bulk from a manifest, resumable at any instant."""

__version__ = "0.1.0"
