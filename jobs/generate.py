"""spark-submit entry point of the synthetic generator: `spark-submit jobs/generate.py --people N --seed S`."""

import sys

from lakehouse.cli import generate_job_main

if __name__ == "__main__":
    sys.exit(generate_job_main())
