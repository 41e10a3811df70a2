"""LiteCoder-Terminal-Gen: synthesizing new tasks from domain specifications.

* :mod:`~ltenv.synth.domains` — domain specifications (``envs_registry/domains/*.yaml``);
* :mod:`~ltenv.synth.llm` — the LLM client (disk cache, structured output, per-stage token accounting);
* :mod:`~ltenv.synth.stages` — the prompt templates and reply schemas of the stages;
* :mod:`~ltenv.synth.sampling` — seeds (skill x subtopic or free continuation) and deficit targeting;
* :mod:`~ltenv.synth.dedupe` — near-duplicate detection (shingling + MinHash);
* :mod:`~ltenv.synth.execution` — execution validation of a candidate in real sandboxes;
* :mod:`~ltenv.synth.pipeline` — the pipeline (:class:`Synthesizer`) and its ledger (:mod:`~ltenv.synth.ledger`).
"""

from __future__ import annotations

from ltenv.synth.candidate import ArtifactError, Candidate
from ltenv.synth.dedupe import NearDupIndex, shingles, task_text
from ltenv.synth.domains import (
    DIFFICULTIES,
    DomainSpec,
    check_examples,
    default_domains_dir,
    load_domain_spec,
    load_domain_specs,
)
from ltenv.synth.execution import REASONS, ExecReport, RunOutcome, validate_candidate
from ltenv.synth.ledger import Ledger, LedgerRecord, SynthReport, read_ledger, report
from ltenv.synth.llm import (
    LLMError,
    LLMOutputError,
    LLMRequestError,
    LLMResponse,
    SynthLLM,
    extract_json,
    validate_json,
)
from ltenv.synth.pipeline import SynthConfig, SynthConfigMismatch, Synthesizer, synthesize
from ltenv.synth.sampling import ResultsFormatError, Seed, SeedSampler, Targeting, deficit_weights

__all__ = [
    "DIFFICULTIES",
    "REASONS",
    "ArtifactError",
    "Candidate",
    "DomainSpec",
    "ExecReport",
    "LLMError",
    "LLMOutputError",
    "LLMRequestError",
    "LLMResponse",
    "Ledger",
    "LedgerRecord",
    "NearDupIndex",
    "ResultsFormatError",
    "RunOutcome",
    "Seed",
    "SeedSampler",
    "SynthConfig",
    "SynthConfigMismatch",
    "SynthLLM",
    "SynthReport",
    "Synthesizer",
    "Targeting",
    "check_examples",
    "default_domains_dir",
    "deficit_weights",
    "extract_json",
    "load_domain_spec",
    "load_domain_specs",
    "read_ledger",
    "report",
    "shingles",
    "synthesize",
    "task_text",
    "validate_candidate",
    "validate_json",
]
