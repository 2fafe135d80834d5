"""What every stage stands on: one tokenizer, one dataset, one set of initial weights, and one
runner (the step protocol in runner.py; flags in cli.py, devices in devices.py, the memory
check in memory.py, the record of a run and the numbers readers see in results.py, the log
line in log.py, where a run happened in environment.py, writing a file whole in saving.py,
and reading one back in schema.py). A stage imports from here and nowhere else outside its
own folder, and nothing here imports a stage or names one: a stage declares what only it
knows in its `Flags`, and the runner asks.

Everything here uses the standard library only (PyTorch is imported inside the functions
that drive it), so stage 1 stays dependency-free.
"""
