"""campaign-guard: pauses and resumes outreach campaigns when the numbers go bad."""

__version__ = "0.1.0"
