"""Data the bridge maps with: value sets, document kinds and official schemas, with provenance."""
