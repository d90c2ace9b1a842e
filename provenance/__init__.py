"""apk-provenance: traceable, verifiable Android app distribution."""

__version__ = "0.1.0"
