"""spark-submit entry point of the whole pipeline: `spark-submit jobs/pipeline.py --env local [--stages ...]`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(None))
