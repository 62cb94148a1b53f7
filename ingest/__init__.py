"""Ingest: files on disk -> articles -> chunks -> the store (see `ingest.pipeline`)."""
