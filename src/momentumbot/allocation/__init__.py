"""allocation package."""
