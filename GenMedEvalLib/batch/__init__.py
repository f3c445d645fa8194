"""Batch jobs: one validated YAML file runs metrics, quality, sweep and compare, resumably (``genmedeval batch``)."""

from .job import Job, load_job, parse_job
from .journal import Journal
from .runner import BatchRun, run_batch

__all__ = ["BatchRun", "Job", "Journal", "load_job", "parse_job", "run_batch"]
