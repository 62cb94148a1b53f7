"""YAML reading for the reviewed data files (red flags, vocabulary, article front matter).

libyaml's C parser when PyYAML was built with it: the pure-Python one took 0.6 s of every start
for assistant/red_flags.yaml (cProfile, this machine); both accept the same safe subset of YAML
and raise yaml.YAMLError on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506  (a safe loader, C or Python)


class YamlFileError(ValueError):
    """A reviewed YAML file that cannot be read or parsed: the message names it and says why."""


def load_file(path: str | Path, what: str) -> Any:
    """The parsed contents of a YAML file; `what` names it in errors ("the red-flag table")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
