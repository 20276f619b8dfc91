"""Example team package: importing it registers every job type it handles."""

from team_jobs import analysis, invoices, partner

__all__ = ["analysis", "invoices", "partner"]
