"""Who wrote this: passage scoring, calibration, the n-gram baseline, the ensemble and evaluation."""
