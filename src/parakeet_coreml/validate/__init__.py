"""Validation: parity metrics, tolerances, WER, the compare gate, reports and plots."""
