"""Serving: the OpenAI-compatible routing proxy, its Python API and CLI commands.

Modules: ``config`` (settings file), ``routing`` (model name → operating point →
decision), ``scoring`` (scored text, ONNX/torch backends), ``onnx_encoder``, ``upstream``
(forwarding), ``app`` (FastAPI), ``controller`` (Python API), ``commands`` (CLI). Nothing is
imported here so ``firewall-routing --help`` stays instant.
"""
