"""The provenance transparency log in the C2SP formats.

Storage-free core, one concept per module, data flowing one way:

* :mod:`.merkle` — RFC 6962 hashes and proofs, computed through a ``HashReader``;
* :mod:`.tiles` — tlog-tiles coordinates, paths, entry bundles, a tile ``HashReader``;
* :mod:`.note` — signed notes and their keys (Ed25519, cosignature/v1, ECDSA verify);
* :mod:`.checkpoint` — tlog-checkpoint bodies and log-signed checkpoints;
* :mod:`.proof` — tlog-proof@v1 bundles for offline verification.
"""
