"""``provider: litellm`` upstreams for ``serve``: see :mod:`firewall_routing.litellm_transport`.

The transport moved to the base stage so that the sampler's LLM judge
(``sampling/scorers/judge.py``) speaks to LiteLLM models through the same code; the names
stay importable from here.
"""

from __future__ import annotations

from firewall_routing.litellm_transport import (
    EXTRA_HINT,
    OFFLINE_ENV,
    LiteLLMTransport,
    call_options,
    litellm_module,
    make_litellm_client,
    require_litellm,
)

__all__ = [
    "EXTRA_HINT",
    "OFFLINE_ENV",
    "LiteLLMTransport",
    "call_options",
    "litellm_module",
    "make_litellm_client",
    "require_litellm",
]
