"""Mixture-of-LoRA: the ``Mixture`` composition block, its config, routers, losses and model API."""

from .. import _plugin
from .analysis import RoutingStatistics, collect_routing_statistics
from .composition import Mixture
from .compute import ExpertCompute, expert_compute
from .config import DropoutSite, Granularity, MixtureConfig
from .hub import MixtureHubMixin, download_mixture_expert
from .layer import sparse_top_k_gates
from .loading import MixtureRouterLoader
from .losses import language_supervision_loss, load_balancing_loss, router_z_loss, routing_statistics
from .model import MixtureModelMixin, mixture_parameters
from .router import MixtureRouters, Router
from .weights import clear_weight_cache

__all__ = [
    "DropoutSite",
    "ExpertCompute",
    "Granularity",
    "Mixture",
    "MixtureConfig",
    "MixtureHubMixin",
    "MixtureModelMixin",
    "MixtureRouterLoader",
    "MixtureRouters",
    "Router",
    "RoutingStatistics",
    "clear_weight_cache",
    "collect_routing_statistics",
    "download_mixture_expert",
    "expert_compute",
    "language_supervision_loss",
    "load_balancing_loss",
    "mixture_parameters",
    "router_z_loss",
    "routing_statistics",
    "sparse_top_k_gates",
]

_plugin.register_if_pending(__name__)  # `adapters` may have been first imported by a module of this package
