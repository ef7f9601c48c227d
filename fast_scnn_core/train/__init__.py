"""Training with the paper's recipe: config, distributed set-up, run directory, loop, report and plots."""
