"""One job runner: stored jobs, claimed with a lease, retried with backoff, done exactly once."""

from bot.jobs.queue import NOW, Backoff, ClaimSpec, DurableQueue, Job, LostClaim
from bot.jobs.runner import JobKind, JobRunner, instance_name

__all__ = [
    "NOW",
    "Backoff",
    "ClaimSpec",
    "DurableQueue",
    "Job",
    "JobKind",
    "JobRunner",
    "LostClaim",
    "instance_name",
]
