"""The benchmarks: each file is a program (python benchmarks/run.py ...); tests import them as modules."""
