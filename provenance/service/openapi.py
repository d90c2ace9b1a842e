"""The service's OpenAPI 3.1 description, written by hand.

Hand-written rather than generated: Starlette has no schema inference worth the
name, and the log's read path (``/checkpoint``, ``/tile/...``) is specified by C2SP,
not by Python types. A test walks the app's routes and this document both ways, so
the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

import provenance

__all__ = ["openapi_spec"]


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_PAGING = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": -1, "default": -1},
        "description": "Only entries with a larger log index (the previous page's next_after).",
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
        "description": "Matched entries per page.",
    },
]

_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def openapi_spec(max_body: int) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    json_answer = {"application/json": {"schema": {"$ref": "#/components/schemas/TraceAnswer"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "apk-provenance log service",
            "version": provenance.__version__,
            "description": "Signed life-cycle statements of Android apps in a C2SP "
            "transparency log: submit statements, trace an app with proofs. See "
            "docs/service.md and docs/trace.md.",
        },
        "paths": {
            "/v1/statements": {
                "post": {
                    "summary": "Submit a signed statement (DSSE envelope)",
                    "description": "The statement is checked (signatures by registered keys, "
                    "schema, role policy, replay rule), appended to the log and indexed. The "
                    "answer comes once the entry is durably sequenced; a checkpoint covers it "
                    "within the integration interval.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Envelope"}
                            }
                        },
                        "description": f"At most {max_body} bytes.",
                    },
                    "responses": {
                        "201": {
                            "description": "Appended durably.",
                            "headers": {
                                "Location": {
                                    "schema": {"type": "string"},
                                    "description": "/v1/entries/{index}",
                                }
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Submitted"}
                                }
                            },
                        },
                        "400": _error("Malformed envelope or statement (error: malformed)."),
                        "401": _error(
                            "Missing, unknown or revoked bearer token (error: unauthorized).",
                            {"WWW-Authenticate": {"schema": {"type": "string"}}},
                        ),
                        "403": _error(
                            "The token's actor is not the statement's signer (wrong-actor), "
                            "the signer's role may not sign this statement (wrong-role), or a "
                            "key is not registered or not valid now (unknown-key)."
                        ),
                        "409": _error("The statement was already accepted or is stale (replay)."),
                        "413": _error("The body or the statement is too large (too-large)."),
                        "422": _error(
                            "A signature does not verify (bad-signature), or the build "
                            "provenance does not (build-provenance)."
                        ),
                        "429": _error(
                            "Too many submissions with this token (rate-limited).",
                            {"Retry-After": {"schema": {"type": "integer"}}},
                        ),
                        "503": _error("The log cannot append right now (unavailable)."),
                    },
                }
            },
            "/v1/trace": {
                "get": {
                    "summary": "Statements about an app, APK, certificate, actor or SDK",
                    "description": "Give exactly one of the query parameters. Every entry "
                    "comes with a tlog-proof@v1 against the answer's checkpoint; entries they "
                    "cite are under references; entries not yet in a checkpoint under pending.",
                    "parameters": [
                        {"name": "package", "in": "query", "schema": {"type": "string"}},
                        {"name": "sha256", "in": "query", "schema": _HEX64},
                        {"name": "cert", "in": "query", "schema": _HEX64},
                        {"name": "actor", "in": "query", "schema": {"type": "string"}},
                        {"name": "sdk", "in": "query", "schema": {"type": "string"}},
                        *_PAGING,
                    ],
                    "responses": {
                        "200": {"description": "The answer.", "content": json_answer},
                        "400": _error("No or several queries, or a malformed value."),
                    },
                }
            },
            "/v1/actors": {
                "get": {
                    "summary": "The actor registry: every actor-registration statement",
                    "parameters": list(_PAGING),
                    "responses": {"200": {"description": "The answer.", "content": json_answer}},
                }
            },
            "/v1/entries/{index}": {
                "get": {
                    "summary": "One log entry, read from the log (not the index), with proof",
                    "parameters": [
                        {
                            "name": "index",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 0},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The entry; proof absent while pending.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/EntryAnswer"}
                                }
                            },
                        },
                        "404": _error("No such entry."),
                    },
                }
            },
            "/v1/status": {
                "get": {
                    "summary": "Origin, verifier key and sizes of the log and the index",
                    "responses": {
                        "200": {
                            "description": "Status.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Status"}
                                }
                            },
                        }
                    },
                }
            },
            "/checkpoint": {
                "get": {
                    "summary": "The latest signed checkpoint (c2sp.org/tlog-checkpoint)",
                    "responses": {
                        "200": {
                            "description": "A signed note.",
                            "content": {
                                "text/plain; charset=utf-8": {"schema": {"type": "string"}}
                            },
                        }
                    },
                }
            },
            "/tile/{path}": {
                "get": {
                    "summary": "Merkle tree tiles and entry bundles (c2sp.org/tlog-tiles)",
                    "description": "path is <L>/<N>[.p/<W>] or entries/<N>[.p/<W>].",
                    "parameters": [
                        {
                            "name": "path",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Tile or entry bundle.",
                            "content": {"application/octet-stream": {}},
                        },
                        "404": {"description": "No such tile."},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1 document."}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `apkprov actor add-token`: apkprov_<id>_<secret>.",
                }
            },
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "description": "DSSE v1 envelope of an in-toto Statement v1.",
                    "required": ["payload", "payloadType", "signatures"],
                    "properties": {
                        "payload": {"type": "string", "contentEncoding": "base64"},
                        "payloadType": {"const": "application/vnd.in-toto+json"},
                        "signatures": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["sig", "keyid"],
                                "properties": {
                                    "sig": {"type": "string"},
                                    "keyid": _HEX64,
                                },
                            },
                        },
                    },
                },
                "Submitted": {
                    "type": "object",
                    "required": ["index", "leaf_hash", "statement_id", "predicate_type", "signer"],
                    "properties": {
                        "index": {"type": "integer"},
                        "leaf_hash": _HEX64,
                        "statement_id": {"type": "string"},
                        "predicate_type": {"type": "string"},
                        "signer": {"type": "string"},
                    },
                },
                "Entry": {
                    "type": "object",
                    "required": ["index", "leaf_hash", "predicate_type"],
                    "properties": {
                        "index": {"type": "integer"},
                        "leaf_hash": _HEX64,
                        "predicate_type": {"type": ["string", "null"]},
                        "envelope": {"$ref": "#/components/schemas/Envelope"},
                        "proof": {
                            "type": "string",
                            "description": "c2sp.org/tlog-proof@v1 against the checkpoint.",
                        },
                    },
                },
                "TraceAnswer": {
                    "type": "object",
                    "required": ["checkpoint", "tree_size", "query", "entries", "references"],
                    "properties": {
                        "checkpoint": {"type": "string"},
                        "tree_size": {"type": "integer"},
                        "query": {"type": "object"},
                        "entries": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Entry"},
                        },
                        "references": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Entry"},
                        },
                        "pending": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Entry"},
                        },
                        "next_after": {"type": ["integer", "null"]},
                    },
                },
                "EntryAnswer": {
                    "type": "object",
                    "required": ["checkpoint", "tree_size", "entry", "pending"],
                    "properties": {
                        "checkpoint": {"type": "string"},
                        "tree_size": {"type": "integer"},
                        "entry": {"$ref": "#/components/schemas/Entry"},
                        "pending": {"type": "boolean"},
                    },
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "origin": {"type": "string"},
                        "vkey": {"type": "string"},
                        "tree_size": {"type": "integer"},
                        "sequenced": {"type": "integer"},
                        "indexed": {"type": "integer"},
                        "statements": {"type": "integer"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }
