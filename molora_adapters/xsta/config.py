"""`XSTAConfig`: hyper-parameters of the X-STA recipe (Cao et al., 2023, arXiv 2311.06758).

Defaults are the authors' released XQuAD scripts (``alibaba/EasyNLP``, ``examples/X-STA/scripts``): knowledge
sharing at 0-based layer 7, ``alpha = 0.2`` (source weight), teaching weight 0.1, alignment (entropy) weight 0.05,
contrastive (InfoNCE) weight 0.05 at temperature 0.05, per-language normalisation on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ..version import __version__

logger = logging.getLogger(__name__)

XQUAD_LANGUAGES = ("en", "ar", "de", "el", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
"""The 12 languages of the vendored XQuAD copy (11 of XQuAD plus Romanian from LiRo)."""

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
"""Architectures whose self-attention layers the GDKS dispatch knows."""


@dataclass
class XSTAConfig:
    """Configuration of one X-STA setup (GDKS layer + ATGC/MGSA QA head).

    Args:
        layer (`int`, *optional*, defaults to 7): 0-based encoder layer of gradient-disentangled knowledge sharing
            (the paper's "layer 8" of 12).
        gate_scale (`float`, *optional*, defaults to 0.3): the cross-attention gate is
            ``r = gate_scale * w + b`` with learnable scalars ``w = 1``, ``b = 0`` at init.
        correction_dropout (`float`, *optional*, defaults to 0.1): dropout before the ``Linear(2H, H)`` that corrects
            the stop-gradient source state into the target's space.
        source_language (`str`, *optional*, defaults to `"en"`): language of the source (first) half of a pair.
        languages (`list[str]`, *optional*): languages with their own normalisation statistics (ATGC); defaults to
            the 12 XQuAD languages.
        use_gdks / use_atgc / use_mgsa (`bool`, *optional*, default to `True`): switch each component off (ablations).
            Without ATGC there is no normalisation and no teacher; without MGSA neither alignment loss.
        source_weight (`float`, *optional*, defaults to 0.2): weight of the source span cross-entropy.
        target_weight (`float`, *optional*, defaults to 0.8): weight of the target span cross-entropy.
        teacher_weight (`float`, *optional*, defaults to 0.1): weight of the teacher's span cross-entropy.
        entropy_weight (`float`, *optional*, defaults to 0.05): weight of the cross-attention entropy penalty.
        infonce_weight (`float`, *optional*, defaults to 0.05): weight of the sentence-level InfoNCE loss.
        temperature (`float`, *optional*, defaults to 0.05): InfoNCE temperature.
        norm_momentum (`float`, *optional*, defaults to 0.1): running-statistics momentum of the normalisation.
        norm_eps (`float`, *optional*, defaults to 1e-8): variance epsilon of the normalisation.
        teacher_heads (`int`, *optional*): heads of the teacher attention; defaults to the encoder's head count.
        entropy_average (`str`, *optional*, defaults to `"padded"`): how the entropy penalty averages over positions:
            ``"padded"`` over every position of the padded batch (the released code), ``"real"`` over real tokens.
    """

    layer: int = 7
    gate_scale: float = 0.3
    correction_dropout: float = 0.1
    source_language: str = "en"
    languages: list[str] = field(default_factory=lambda: list(XQUAD_LANGUAGES))
    use_gdks: bool = True
    use_atgc: bool = True
    use_mgsa: bool = True
    source_weight: float = 0.2
    target_weight: float = 0.8
    teacher_weight: float = 0.1
    entropy_weight: float = 0.05
    infonce_weight: float = 0.05
    temperature: float = 0.05
    norm_momentum: float = 0.1
    norm_eps: float = 1e-8
    teacher_heads: int | None = None
    entropy_average: Literal["padded", "real"] = "padded"

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            raise ValueError(
                f"`layer` must be a non-negative int (0-based encoder layer), got {self.layer!r}."
            )
        if not 0.0 <= self.correction_dropout < 1.0:
            raise ValueError(f"`correction_dropout` must be in [0, 1), got {self.correction_dropout!r}.")
        for name in (
            "source_weight",
            "target_weight",
            "teacher_weight",
            "entropy_weight",
            "infonce_weight",
            "gate_scale",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
        for name in ("temperature", "norm_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}.")
        if not 0.0 < self.norm_momentum <= 1.0:
            raise ValueError(f"`norm_momentum` must be in (0, 1], got {self.norm_momentum!r}.")
        self.languages = list(self.languages)
        if not self.languages or len(set(self.languages)) != len(self.languages):
            raise ValueError(
                f"`languages` must be a non-empty list of distinct codes, got {self.languages!r}."
            )
        if self.source_language not in self.languages:
            raise ValueError(
                f"`source_language` {self.source_language!r} must be one of `languages` {self.languages}."
            )
        if self.entropy_average not in ("padded", "real"):
            raise ValueError(f"`entropy_average` must be 'padded' or 'real', got {self.entropy_average!r}.")
        if self.teacher_heads is not None and self.teacher_heads < 1:
            raise ValueError(f"`teacher_heads` must be a positive int or None, got {self.teacher_heads!r}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the library version."""
        return {**asdict(self), "molora_version": __version__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> XSTAConfig:
        """Build from a saved dict: the version key is dropped, unknown keys warn and are dropped."""
        data = dict(data)
        data.pop("molora_version", None)
        data.pop("head_type", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("Ignoring unknown X-STA config keys %s.", unknown)
        return cls(**{k: v for k, v in data.items() if k in known})
