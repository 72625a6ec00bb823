"""Benchmarks: the scenario × controller × seed matrix, its JSON document, tables, plots and report.

Nothing is imported here: the CLI imports `bench.explain` at startup, which must not pull in the
simulator (numpy, scipy, cvxpy). Import each name from its module (`bench.matrix`, `bench.document`, …).
"""
