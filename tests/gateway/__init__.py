"""Tests of the simulated TWS gateway."""
