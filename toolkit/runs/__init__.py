"""What a run directory holds, opening a trained run, and its report."""
