"""The red-flag table (assistant/red_flags.yaml), loaded and checked.

The table is data a clinician reviews: rows (id, level, reason, why, sources, the section of the
knowledge base to cite, who it applies to, the context it needs, the concept combinations that
raise it, example phrasings and harmless look-alikes) and the concept vocabulary. This module only
reads it; `assistant.triage` interprets it.
"""

from __future__ import annotations

from pathlib import Path

TABLE_PATH = Path(__file__).resolve().parent / "red_flags.yaml"
