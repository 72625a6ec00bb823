"""Benchmarks: the scenario × controller × seed matrix, its JSON document, tables, plots and report."""

from kubeagora.bench.document import BenchDocument, bench_document, read_document, summarize, write_document
from kubeagora.bench.matrix import MatrixPlan, RunSpec, ScenarioInfo, plan_matrix, run_matrix, run_one

__all__ = [
    "BenchDocument",
    "MatrixPlan",
    "RunSpec",
    "ScenarioInfo",
    "bench_document",
    "plan_matrix",
    "read_document",
    "run_matrix",
    "run_one",
    "summarize",
    "write_document",
]
