"""Outcome tables: what every model did on each query (DESIGN.md §2, §9).

Everything downstream (labels, routers, metrics) reads only :class:`OutcomeTable`, so every
input format is converted here, once, and validated here, once. A table holds any number of
models; the weak/strong pair of the paper is a view of two of them (``table.pair(w, s)``).
Missing information stays missing (NaN / None): a model without an outcome on a row is never
counted as failing it, and a label design that needs a field the data lacks must fail loudly
or use an explicit, reported approximation (see ``labels.Approximations``), never invent it.

Formats (``load_table`` detects them; ``--format`` names them):

* ``routerdc`` – RouterDC JSON, all 7 models (:mod:`.releases`);
* ``routellm`` – RouteLLM response CSV, every model column (:mod:`.releases`);
* ``mmlu-pro`` – TIGER-Lab's MMLU-Pro outputs, 23 models (:func:`load_mmlu_pro`);
* ``alpacaeval`` – AlpacaEval judged answers, 28 models (:func:`load_alpacaeval`);
* ``multi`` – the N-model JSONL/CSV format with per-model fields (:mod:`.multi`);
* ``generic`` – the weak_/strong_ pair JSONL/CSV format (:mod:`.generic`) that
  ``firewall-routing sample`` writes;
* ``mixinstruct`` – LLM-Blender's MixInstruct, the data set of Hybrid LLM (:mod:`.mixinstruct`).
"""

from firewall_routing.outcomes.generic import (
    GenericRow,
    generic_records,
    load_generic,
    table_from_records,
    write_generic,
)
from firewall_routing.outcomes.load import FORMATS, Format, detect_format, load_table
from firewall_routing.outcomes.mixinstruct import (
    MIXINSTRUCT_METRIC,
    load_mixinstruct,
    mixinstruct_models,
    mixinstruct_records,
)
from firewall_routing.outcomes.multi import (
    MULTI_FIELDS,
    ModelEntry,
    load_multi,
    multi_records,
    table_from_multi_records,
    write_multi,
)
from firewall_routing.outcomes.releases import (
    ROUTELLM_DEFAULT_STRONG,
    ROUTELLM_DEFAULT_WEAK,
    ROUTERDC_SAMPLES,
    JudgedAnswers,
    load_alpacaeval,
    load_alpacaeval_answers,
    load_mmlu_pro,
    load_routellm_csv,
    load_routerdc,
    mmlu_pro_prompt,
    routerdc_models,
)
from firewall_routing.outcomes.table import (
    DEFAULT_QUALITY_THRESHOLD,
    MAX_SAMPLES,
    FloatArray,
    IntArray,
    ModelOutcomes,
    OutcomeTable,
    concat,
    split_train_val,
)

__all__ = [
    "DEFAULT_QUALITY_THRESHOLD",
    "FORMATS",
    "MAX_SAMPLES",
    "MIXINSTRUCT_METRIC",
    "MULTI_FIELDS",
    "ROUTELLM_DEFAULT_STRONG",
    "ROUTELLM_DEFAULT_WEAK",
    "ROUTERDC_SAMPLES",
    "FloatArray",
    "Format",
    "GenericRow",
    "IntArray",
    "JudgedAnswers",
    "ModelEntry",
    "ModelOutcomes",
    "OutcomeTable",
    "concat",
    "detect_format",
    "generic_records",
    "load_alpacaeval",
    "load_alpacaeval_answers",
    "load_generic",
    "load_mixinstruct",
    "load_mmlu_pro",
    "load_multi",
    "load_routellm_csv",
    "load_routerdc",
    "load_table",
    "mixinstruct_models",
    "mixinstruct_records",
    "mmlu_pro_prompt",
    "multi_records",
    "routerdc_models",
    "split_train_val",
    "table_from_multi_records",
    "table_from_records",
    "write_generic",
    "write_multi",
]
