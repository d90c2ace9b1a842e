"""``python -m provenance`` runs the ``apkprov`` CLI."""

import sys

from provenance.cli import main

sys.exit(main())
