"""Configuration: JSON-schema validation with defaults, and per-dataset settings.

The schema (``schemas/config.schema.yaml``) is the single source of keys, types and
defaults. :func:`validate_config` is what the Snakefile calls before any job starts;
errors name the offending key (``dataset_settings.beauty.split.method``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"

#: Defaults that depend on a dataset's raw format.
FORMAT_DEFAULTS: dict[str, dict[str, Any]] = {
    "amazon": {"encoding": "utf-8", "text_template": "{title}"},
    "csv": {"encoding": "utf-8", "text_template": "{title}"},
    "movielens": {"encoding": "latin-1", "text_template": "{title} -- {genres}"},
    "recbole": {"encoding": "utf-8", "text_template": "{movie_title}"},
}


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _with_defaults(validator_class):
    """A validator class that fills ``default`` values of absent properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _key(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<config>"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises :class:`ConfigError` naming the first offending key: unknown keys, wrong
    types, values outside their range, datasets without settings, and paths that exist
    but cannot be used (:func:`check_paths`).
    """
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            unknown = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            known = sorted(e.schema.get("properties", {}))
            path = [str(p) for p in e.absolute_path] + unknown[:1]
            raise ConfigError(".".join(path), f"unknown key (known keys here: {known})")
        raise ConfigError(_key(e), e.message)
    known = config["dataset_settings"]
    for i, name in enumerate(config["datasets"]):
        if name not in known:
            raise ConfigError(f"datasets[{i}]", f"unknown dataset {name!r}; dataset_settings "
                              f"defines {sorted(known)}")
    for name, settings in known.items():
        for k, v in FORMAT_DEFAULTS[settings["format"]].items():
            settings.setdefault(k, v)
        source = settings.get("source")
        if source is not None:
            from .data.sources import SOURCES
            if source not in SOURCES:
                raise ConfigError(f"dataset_settings.{name}.source",
                                  f"unknown source {source!r}; known: {sorted(SOURCES)}")
    _check_prompts(config)
    _check_llm(config)
    _check_backbone_params(config)
    check_paths(config)
    return config


def check_paths(config: dict[str, Any]) -> None:
    """The folders and raw files the config names are usable where they exist: not a
    symbolic link loop or a link to nothing, not a file where a folder belongs (``raw_dir``,
    ``cache_dir``, a dataset's raw folder) or a folder where a file belongs (its
    ``files``), not unreadable (or, for ``cache_dir``, unwritable). Missing paths pass:
    raw files are downloaded or reported missing by Snakemake, folders are created.
    Relative paths are taken from the working directory (Snakemake's workdir)."""
    from .io import path_problem

    def check(path: Path, key: str, kind: str, writable: bool = False) -> bool:
        problem = path_problem(path, kind, writable)
        if problem:
            raise ConfigError(key, f"{path} {problem}")
        return path.is_dir() if kind == "folder" else path.exists()

    check(Path(config.get("cache_dir", "cache")), "cache_dir", "folder", writable=True)
    raw_dir = Path(config.get("raw_dir", "data/raw"))
    if not check(raw_dir, "raw_dir", "folder"):
        return
    for name in config["datasets"]:
        settings = config["dataset_settings"][name]
        folder = raw_dir / (settings.get("raw_folder") or name)
        if not check(folder, f"dataset_settings.{name}.raw_folder", "folder"):
            continue
        for role in ("interactions", "items"):
            check(folder / settings["files"][role], f"dataset_settings.{name}.files.{role}",
                  "file")


def _check_backbone_params(config: dict[str, Any]) -> None:
    """Each configured backbone's ``train.backbone_params`` are keywords it takes, checked
    before any job starts (the models, and torch, are imported only when some are set)."""
    train = config.get("train") or {}
    params = train.get("backbone_params") or {}
    wanted = [b for b in train.get("backbones") or [] if params.get(b)]
    if not wanted:
        return
    from .models import get_backbone

    for name in wanted:
        get_backbone(name).split_params(params[name])


def _check_llm(config: dict[str, Any]) -> None:
    """No secret in the ``llm:`` block: the server URL carries no credentials, query or
    fragment, and ``api_key_env`` names a variable rather than holding the key. The block
    reaches rule params, Snakemake's metadata and logs; the key is read from the
    environment inside the job only. Messages never repeat a secret."""
    from .llm.common import base_url_problem, is_env_name

    openai = config.get("llm", {}).get("openai") or {}
    base_url = openai.get("base_url")
    if isinstance(base_url, str):
        problem = base_url_problem(base_url)
        if problem:
            raise ConfigError("llm.openai.base_url", problem)
    if "api_key_env" in openai and not is_env_name(openai["api_key_env"]):
        raise ConfigError("llm.openai.api_key_env",
                          "expected the NAME of an environment variable that holds the key "
                          "(e.g. OPENAI_API_KEY), not the key itself (value not shown)")


def _check_prompts(config: dict[str, Any]) -> None:
    """Prompt templates parse, and every configured view has a qualifier."""
    from .prompts import PromptSettings

    prompts = PromptSettings.from_config(config["prompts"])
    for i, view in enumerate(config["views"]):
        if view not in prompts.qualifiers:
            raise ConfigError(f"views[{i}]", f"view {view!r} has no entry in "
                              f"prompts.qualifiers (defined: {sorted(prompts.qualifiers)})")


def load_config(*paths: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load YAML files (later ones deep-merged over earlier ones) and validate them."""
    config: dict[str, Any] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            deep_update(config, yaml.safe_load(f) or {})
    if overrides:
        deep_update(config, overrides)
    return validate_config(config)


def deep_update(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Merge ``other`` into ``base`` recursively (dicts merge, everything else replaces)."""
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def dataset_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The complete, validated settings of one dataset."""
    try:
        return config["dataset_settings"][name]
    except KeyError:
        raise ConfigError("datasets", f"unknown dataset {name!r}") from None
