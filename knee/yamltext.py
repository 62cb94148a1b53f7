"""YAML reading for the reviewed data files (red flags, vocabulary, article front matter).

libyaml's C parser when PyYAML was built with it: the pure-Python one took 0.6 s of every start
for assistant/red_flags.yaml (cProfile, this machine); both accept the same safe subset of YAML
and raise yaml.YAMLError on bad input.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506  (a safe loader, C or Python)
