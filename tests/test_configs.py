"""Config round trips (dict, JSON, copy, pickle) over every config class of the package."""

from __future__ import annotations

import pytest
from testing_common import CONFIG_ROUND_TRIPS, config_classes


def _mixture():
    from molora_adapters import MixtureConfig

    return MixtureConfig(experts=["en", "de", "zh"], top_k=2, granularity="sentence")


def _oie_head():
    from molora_adapters.oie.heads import OIEHeadConfig

    return OIEHeadConfig(n_arg_layers=2, d_feedforward=64, activation="gelu", argument_loss_weight=0.5)


def _stage():
    from molora_adapters.training import Stage

    return Stage("mix", ("mixture", "heads"), max_steps=5, learning_rate=1e-3, warmup_ratio=0.1, mixture="m")


def _annotate(tmp_path):
    from molora_adapters.data.llm import AnnotateConfig

    return AnnotateConfig(languages="de,zh", out_dir=str(tmp_path), prompt="mt4crossoie-cot", limit=3)


def _prompt():
    from molora_adapters.data.llm import MT4CROSSOIE

    return MT4CROSSOIE


def _openai_http():
    from molora_adapters.data.llm import OpenAIHTTPConfig

    return OpenAIHTTPConfig(
        base_url="http://localhost:8000/v1", model="m", api_key="EMPTY", extra_body={"seed": 0}
    )


def _transformers_local(tmp_path):
    from molora_adapters.data.llm import TransformersLocalConfig

    return TransformersLocalConfig(model=str(tmp_path), device="cpu", seed=3)


def _embedded_model():
    from molora_adapters.models import EMBEDDED_MODELS

    return EMBEDDED_MODELS.get("multilingual-e5-small")


def _xsta():
    from molora_adapters.xsta import XSTAConfig

    return XSTAConfig(layer=3, languages=["en", "de"], use_mgsa=False, teacher_weight=0.2, teacher_heads=4)


def _pairing():
    from molora_adapters.data.projection import PairingConfig

    return PairingConfig(min_similarity=0.7, max_length_ratio=2.0)


def _project(tmp_path):
    from molora_adapters.data.projection import PairingConfig, ProjectConfig

    return ProjectConfig(
        languages="de,zh", out_dir=str(tmp_path), method="argmax", pairing=PairingConfig(min_margin=0.05)
    )


CONFIG_CASES = {
    "MixtureConfig": _mixture,
    "OIEHeadConfig": _oie_head,
    "Stage": _stage,
    "AnnotateConfig": _annotate,
    "PromptTemplate": _prompt,
    "OpenAIHTTPConfig": _openai_http,
    "TransformersLocalConfig": _transformers_local,
    "EmbeddedModelSpec": _embedded_model,
    "XSTAConfig": _xsta,
    "PairingConfig": _pairing,
    "ProjectConfig": _project,
}


def _build(name, tmp_path):
    factory = CONFIG_CASES[name]
    return factory(tmp_path) if factory.__code__.co_argcount else factory()


@pytest.mark.parametrize("check", sorted(CONFIG_ROUND_TRIPS))
@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_config_round_trips(name, check, tmp_path):
    config = _build(name, tmp_path)
    assert type(config).__name__ == name
    CONFIG_ROUND_TRIPS[check](config)


def test_every_config_class_has_a_case():
    assert {cls.__name__ for cls in config_classes()} == set(CONFIG_CASES)
