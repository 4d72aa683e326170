import copy

import pytest
import yaml

from conftest import REPO
from llm4sbr_core.config import load_config, validate_config
from llm4sbr_core.errors import ConfigError


def default_config():
    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)


def test_default_config_is_valid_and_gets_defaults():
    config = validate_config(default_config())
    ml = config["dataset_settings"]["ml-100k"]
    assert ml["on_bad_line"] == "error"
    assert ml["split"]["seed"] == 0
    assert config["dataset_settings"]["ml-1m"]["encoding"] == "latin-1"  # format default


def test_paper_overlay_is_valid_and_sets_the_papers_prompts():
    config = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")
    assert config["datasets"] == ["beauty", "ml-1m"]
    assert config["prompts"]["qualifiers"] == {"short": " in the short-term",
                                               "long": " in the long-term", "normal": ""}
    assert config["prompts"]["template"].startswith(
        "The order in which users click on items is as follows:\n{items}\n")
    defaults = validate_config(default_config())["prompts"]
    assert defaults["qualifiers"] != config["prompts"]["qualifiers"]  # defaults untouched


def test_shared_data_overlay_is_valid():
    config = load_config(REPO / "config.yaml", REPO / "configs" / "shared-data.yaml")
    assert config["dataset_settings"]["beauty"]["format"] == "csv"
    assert config["raw_dir"] == "../shared/data"


@pytest.mark.parametrize("mutate, key, words", [
    (lambda c: c.update(datsets=["ml-100k"]), "datsets", "unknown key"),
    (lambda c: c["dataset_settings"]["ml-100k"]["split"].update(methd="ordered"),
     "dataset_settings.ml-100k.split.methd", "unknown key"),
    (lambda c: c["dataset_settings"]["ml-100k"]["split"].update(method="orderd"),
     "dataset_settings.ml-100k.split.method", "is not one of"),
    (lambda c: c["dataset_settings"]["ml-100k"]["filter"].update(min_item_count="5"),
     "dataset_settings.ml-100k.filter.min_item_count", "is not of type"),
    (lambda c: c["dataset_settings"]["ml-100k"]["split"].update(test_fraction=1.5),
     "dataset_settings.ml-100k.split.test_fraction", "1.5"),
    (lambda c: c.update(datasets=["ml-100K"]), "datasets[0]", "unknown dataset 'ml-100K'"),
    (lambda c: c["dataset_settings"]["ml-1m"].update(source="ml1m"),
     "dataset_settings.ml-1m.source", "unknown source"),
    (lambda c: c["dataset_settings"]["ml-1m"].update(format="dat"),
     "dataset_settings.ml-1m.format", "is not one of"),
    (lambda c: c.update(datasets="ml-100k"), "datasets", "is not of type"),
    (lambda c: c["dataset_settings"]["ml-100k"]["split"].update(seed=-5),
     "dataset_settings.ml-100k.split.seed", "less than the minimum"),
    (lambda c: c["dataset_settings"]["ml-100k-quick"]["subsample"].update(seed=-1),
     "dataset_settings.ml-100k-quick.subsample.seed", "less than the minimum"),
    (lambda c: c["dataset_settings"]["ml-100k"]["split"].update(valid_fraction=0),
     "dataset_settings.ml-100k.split.valid_fraction", "less than or equal to the minimum"),
    (lambda c: c["train"].update(backbones=["srgnn"], backbone_params={"srgnn": {"stepz": 2}}),
     "train.backbone_params.srgnn", "unknown parameter(s) ['stepz'] of SRGNN"),
])
def test_bad_config_names_the_key(mutate, key, words):
    config = copy.deepcopy(default_config())
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert err.value.key == key
    assert words in str(err.value)


SECRET = "sk-live-DO-NOT-ECHO-31"


@pytest.mark.parametrize("openai, key, words", [
    ({"base_url": f"https://alice:{SECRET}@api.example.com/v1"}, "llm.openai.base_url",
     "user name or password"),
    ({"base_url": f"http://h:8000/v1?api_key={SECRET}"}, "llm.openai.base_url",
     "query string"),
    ({"base_url": f"http://h:8000/v1#{SECRET}"}, "llm.openai.base_url", "fragment"),
    ({"base_url": "ftp://h/v1"}, "llm.openai.base_url", "http(s) URL"),
    ({"base_url": "http://h/v1", "api_key_env": SECRET}, "llm.openai.api_key_env",
     "NAME of an environment variable"),
    ({"base_url": "http://h/v1", "deadline_s": 0}, "llm.openai.deadline_s", "minimum"),
])
def test_llm_secrets_are_refused_without_being_shown(openai, key, words):
    config = copy.deepcopy(default_config())
    config["llm"] = {"backend": "openai", "model": "m", "openai": openai}
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert err.value.key == key and words in str(err.value)
    assert SECRET not in str(err.value) and "alice" not in str(err.value)


def test_llm_openai_defaults():
    config = copy.deepcopy(default_config())
    config["llm"] = {"backend": "openai", "model": "m",
                     "openai": {"base_url": "http://localhost:8000/v1"}}
    openai = validate_config(config)["llm"]["openai"]
    assert openai["deadline_s"] is None and openai["timeout_s"] == 60
    assert openai["api_key_env"] == "OPENAI_API_KEY"
