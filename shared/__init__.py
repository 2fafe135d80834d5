"""What every stage stands on: one tokenizer, one dataset, one set of initial weights, and one
runner (the step protocol in runner.py; flags in cli.py, devices in devices.py, the memory
check in memory.py, the results file in results.py). A stage imports from here and nowhere
else outside its own folder, and nothing here imports a stage or names one: a stage declares
what only it knows in its `Flags`, and the runner asks.

Everything here uses the standard library only (PyTorch is imported inside the functions
that drive it), so stage 1 stays dependency-free.
"""
