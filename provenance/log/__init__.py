"""The provenance transparency log in the C2SP formats."""
