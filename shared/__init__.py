"""Code every stage shares: one tokenizer, one dataset, one set of initial weights, one CLI,
one results file. A stage imports from here and nowhere else outside its own folder.

Everything here except `plotting` uses the standard library only, so stage 1 stays
dependency-free.
"""
