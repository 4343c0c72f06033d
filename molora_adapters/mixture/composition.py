"""The ``Mixture`` composition block, a sibling of adapters' ``Stack``, ``Fuse`` and ``Average``."""

from __future__ import annotations

from adapters.composition import AdapterCompositionBlock

from .config import check_top_k


def default_mixture_name(experts: list[str] | tuple[str, ...]) -> str:
    """The name a mixture gets when none is given: the comma-joined experts, as adapters names a ``Fuse``."""
    return ",".join(experts)


class Mixture(AdapterCompositionBlock):
    """Route every adapted linear layer through the top-k of several LoRA experts.

    The experts must have been added with ``model.add_adapter_mixture(...)`` (which also adds the routers).
    Like ``Fuse``, the block is identified by a name that defaults to the comma-joined expert names.

    Args:
        *experts (`str`): names of the LoRA expert adapters.
        top_k (`int`, *optional*): experts mixed per routing decision; `None` (the default) uses the mixture
            config's ``top_k`` at every forward. Overriding it at inference changes only the routing, not the weights.
        name (`str`, *optional*): the mixture's name; defaults to ``",".join(experts)``.

    Example:
        ```python
        model.set_active_adapters(Stack("task", Mixture("en", "de", "zh", top_k=2)))
        ```
    """

    def __init__(self, *experts: str, top_k: int | None = None, name: str | None = None):
        super().__init__(*experts)
        if not experts:
            raise ValueError("`Mixture` needs at least one expert adapter name.")
        bad = [c for c in self.children if not isinstance(c, str)]
        if bad:
            raise ValueError(f"`Mixture` children must be adapter names (LoRA experts), got {bad!r}.")
        if len(set(self.children)) != len(self.children):
            raise ValueError(f"`Mixture` experts must be unique, got {self.children!r}.")
        if top_k is not None:
            check_top_k(top_k, len(self.children))
        self.top_k = top_k
        self._name = name

    @property
    def name(self) -> str:
        return self._name or default_mixture_name(self.children)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Mixture)
            and self.children == other.children
            and self.top_k == other.top_k
            and self.name == other.name
        )

    __hash__ = None  # mutable container semantics, like the other blocks

    def __repr__(self) -> str:
        top_k = "config" if self.top_k is None else self.top_k
        return f"Mixture[{', '.join(self.children)}; top_k={top_k}, name={self.name!r}]"

    def _get_save_kwargs(self) -> dict:
        kwargs = {} if self.top_k is None else {"top_k": self.top_k}
        if self._name:
            kwargs["name"] = self._name
        return kwargs
