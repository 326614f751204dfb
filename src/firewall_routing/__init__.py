"""firewall-routing: send each LLM query to a cheap weak model or an expensive strong one.

The pipeline (DESIGN.md §1) flows one way through the modules named after its stages:
``outcomes`` → ``labels`` → ``routers`` → ``metrics`` → ``report``; ``calibration`` and
``serve`` turn a trained router into live routing. Heavy dependencies (torch,
transformers) are imported lazily inside the functions that need them.
"""

__version__ = "0.1.0"
