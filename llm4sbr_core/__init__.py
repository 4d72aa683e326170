"""llm4sbr: LLM4SBR (Qiao et al., ACM TOIS 2025) as a library and a Snakemake workflow.

All logic lives in this package; the Snakemake rules only wire files together.
"""

__version__ = "0.1.0"
