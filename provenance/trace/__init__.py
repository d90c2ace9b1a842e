"""Tracing an app through the log: the trace index and the verifying client.

Server side, the index (:mod:`.index`, fed by :mod:`.indexer` from the log, keys
from :mod:`.extract`) finds the statements about a package, an APK, a signer
certificate, an actor or an SDK without scanning the log, and :mod:`.answers` returns
them with tlog-proofs against one checkpoint. Client side, :mod:`.verify` trusts only
the log's key and the actor registry's root keys (:mod:`.trust`): it checks every
proof, signature and role, and what references reveal about omissions; :mod:`.chain`
lays the result out as a life cycle. See ``docs/trace.md``.
"""

from __future__ import annotations

from provenance.trace.answers import actors_answer, entry_answer, trace_answer
from provenance.trace.chain import AppChain, Version, build_chains, chains_json, render_text
from provenance.trace.extract import IndexRow, index_row, statement_keys, statement_refs
from provenance.trace.index import IndexedEntry, SeenStatements, TraceIndex
from provenance.trace.indexer import Indexer, read_log_entries
from provenance.trace.sources import HttpTraceSource, LocalTraceSource, TraceSource
from provenance.trace.sql import Database
from provenance.trace.trust import load_registry_file, load_root_keys, registry_document
from provenance.trace.verify import TraceResult, TraceVerifier, Trust, VerifiedStatement

__all__ = [
    "AppChain",
    "Database",
    "HttpTraceSource",
    "IndexRow",
    "IndexedEntry",
    "Indexer",
    "LocalTraceSource",
    "SeenStatements",
    "TraceIndex",
    "TraceResult",
    "TraceSource",
    "TraceVerifier",
    "Trust",
    "VerifiedStatement",
    "Version",
    "actors_answer",
    "build_chains",
    "chains_json",
    "entry_answer",
    "index_row",
    "load_registry_file",
    "load_root_keys",
    "read_log_entries",
    "registry_document",
    "render_text",
    "statement_keys",
    "statement_refs",
    "trace_answer",
]
