"""spark-submit entry point of the gold stage: `spark-submit jobs/gold.py --env local`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(["gold"]))
