"""Datasets shipped with the package, loaded offline (see ``NOTICE`` for sources and licences).

Regenerate with ``python -m provenance.data.build_sdk_db`` from the shared datasets.
"""
