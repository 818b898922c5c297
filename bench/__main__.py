"""`python -m bench`: every benchmark, then the summary table."""

from bench.run_all import main

main()
