"""What stands above the chapters to explain them: the README tables (readmes.py, `python -m
report`), the notebooks' plots (plotting.py), the chapters' diagrams (diagrams.py, `python -m
report.diagrams`) and the benchmarks' figures (benchmark_plots.py, `python -m
report.benchmark_plots`). Every figure and table is drawn from a results file or from the
chapters' own code, never typed. The chapters and shared/ import nothing from here."""
