"""APK container, signatures and manifest.

Public entry point: :func:`provenance.apk.verify.verify_apk`.
"""
