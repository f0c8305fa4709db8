"""spark-submit entry point of the bronze stage: `spark-submit jobs/bronze.py --env local`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(["bronze"]))
